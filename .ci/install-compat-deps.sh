#!/usr/bin/env bash
# Installs the non-Go clients of the compatibility suite (test/compat/):
#   kafka-python            Debian python3-kafka
#   confluent-kafka-python  Debian python3-confluent-kafka (librdkafka1)
#   kcat                    Debian kcat (librdkafka1)
#   KafkaJS                 npm, pinned by test/compat/kafkajs/package-lock.json
#   kafka-node              npm, pinned by test/compat/kafkanode/package-lock.json
#   no-kafka                npm, pinned by test/compat/nokafka/package-lock.json
#                           (Node.js/npm from Debian if none is installed)
#
# Idempotent and non-interactive. Debian versions are pinned below (bookworm);
# if the archive moves on, the install fails and names the pin to update.
# KPROXY_COMPAT_UNPINNED=1 installs whatever the archive has instead.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
root=$(cd "$(dirname "$0")/.." && pwd)

# Exact versions the suite was last run with (dpkg-query -W).
pins=(
	"python3-kafka=2.0.2-3"
	"python3-confluent-kafka=1.7.0-4"
	"kcat=1.7.1-2"
	"librdkafka1=2.0.2-1"
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "install-compat-deps: need root or sudo for apt-get" >&2; exit 1; }
	sudo="sudo -n"
fi

log() { echo "install-compat-deps: $*" >&2; }

installed_ok() {
	local p name want have
	for p in "${pins[@]}"; do
		name=${p%%=*} want=${p#*=}
		have=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true)
		if [ -n "${KPROXY_COMPAT_UNPINNED:-}" ]; then
			[[ $have == "install ok installed "* ]] || return 1
		else
			[ "$have" = "install ok installed $want" ] || return 1
		fi
	done
}

apt_install() {
	local args=()
	if [ -n "${KPROXY_COMPAT_UNPINNED:-}" ]; then
		args=("${pins[@]%%=*}")
	else
		args=("${pins[@]}")
	fi
	$sudo apt-get update -q &&
		$sudo apt-get install -y -q --no-install-recommends \
			-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
			"${args[@]}"
}

if installed_ok; then
	log "Debian packages already installed at the pinned versions"
else
	if ! apt_install; then
		log "apt failed; retrying once in 10s"
		sleep 10
		if ! apt_install; then
			log "apt install of the pinned versions failed. If a pin left the archive,"
			log "check 'apt-cache policy ${pins[*]%%=*}' and update the pins in $0."
			log "Installing what the archive has now; the matrix prints the versions it ran."
			KPROXY_COMPAT_UNPINNED=1
			apt_install || { log "apt install failed"; exit 1; }
		fi
	fi
fi
dpkg-query -W "${pins[@]%%=*}" >&2

# The Python clients need Debian's interpreter (dist-packages).
/usr/bin/python3 -c 'import kafka, confluent_kafka' ||
	{ log "/usr/bin/python3 cannot import kafka / confluent_kafka"; exit 1; }

if ! command -v npm >/dev/null; then
	# A fresh machine may have no Node.js: Debian's (18 on bookworm) will do.
	log "npm not found: installing Debian nodejs and npm"
	$sudo apt-get update -q &&
		$sudo apt-get install -y -q --no-install-recommends nodejs npm ||
		{ log "installing nodejs/npm failed (need Node.js >= 14 and npm)"; exit 1; }
fi
# kafka-node's one optional dependency is snappy, a native addon built
# with node-gyp; the suite's kafka-node row uses gzip, so it is left out.
for dir in kafkajs kafkanode nokafka; do
	cd "$root/test/compat/$dir"
	if ! npm ci --omit=optional --no-audit --no-fund --loglevel=error; then
		log "npm ci in test/compat/$dir failed; retrying once in 10s"
		sleep 10
		npm ci --omit=optional --no-audit --no-fund --loglevel=error
	fi
done
cd "$root/test/compat"
log "kafkajs $(node -p 'require("./kafkajs/node_modules/kafkajs/package.json").version')," \
	"kafka-node $(node -p 'require("./kafkanode/node_modules/kafka-node/package.json").version')," \
	"no-kafka $(node -p 'require("./nokafka/node_modules/no-kafka/package.json").version')"
