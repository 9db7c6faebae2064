// Package manifesttest checks the deployment files under deploy/: every
// Kubernetes manifest decodes strictly into the Kubernetes API types, the
// sidecar is wired the way the README says, the embedded kproxy config only
// uses documented keys, and the Grafana dashboard only queries metrics that
// kproxy exports.
//
// It is its own module so that the main module stays free of k8s.io
// dependencies. Run it with:
//
//	(cd deploy/manifesttest && go test ./...)
package manifesttest
