package auth

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
)

// SCRAM server (RFC 5802 section 5, RFC 7677):
//
//	client-first:  gs2-header client-first-bare
//	               gs2-header = ("n" | "y") "," [ "a=" authzid ] ","
//	               client-first-bare = "n=" user ",r=" c-nonce ["," ext]
//	server-first:  "r=" c-nonce s-nonce ",s=" salt ",i=" iterations
//	client-final:  "c=" base64(gs2-header) ",r=" nonce ["," ext] ",p=" proof
//	server-final:  "v=" base64(ServerSignature)
//
//	SaltedPassword  = PBKDF2(password, salt, i)
//	ClientKey       = HMAC(SaltedPassword, "Client Key")
//	StoredKey       = H(ClientKey)
//	AuthMessage     = client-first-bare "," server-first "," client-final-without-proof
//	ClientSignature = HMAC(StoredKey, AuthMessage)
//	ClientProof     = ClientKey XOR ClientSignature
//	ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)
//
// The server checks a proof by recovering ClientKey = proof XOR
// ClientSignature and comparing H(ClientKey) with StoredKey, so it keeps
// only StoredKey and ServerKey.

func newScramCred(h func() hash.Hash, password string) (scramCred, error) {
	salt := randomBytes(16)
	salted, err := pbkdf2.Key(h, password, salt, scramIterations, h().Size())
	if err != nil {
		return scramCred{}, err
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	sum := h()
	sum.Write(clientKey)
	return scramCred{
		salt:       salt,
		storedKey:  sum.Sum(nil),
		serverKey:  hmacSum(h, salted, []byte("Server Key")),
		iterations: scramIterations,
	}, nil
}

type scramSession struct {
	creds     map[string]scramCred
	hash      func() hash.Hash
	mechanism string

	step        int
	user        string
	cred        scramCred
	gs2Header   string
	clientBare  string
	serverFirst string
	nonce       string
}

func (s *scramSession) User() string { return s.user }

func (s *scramSession) Step(msg []byte) ([]byte, bool, error) {
	s.step++
	switch s.step {
	case 1:
		out, err := s.first(string(msg))
		return out, false, err
	case 2:
		out, err := s.final(string(msg))
		return out, err == nil, err
	}
	return nil, false, failed("%s conversation already finished", s.mechanism)
}

func (s *scramSession) first(msg string) ([]byte, error) {
	// gs2-header: channel binding flag, optional authzid.
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, failed("client-first-message without gs2 header")
	}
	switch {
	case flag == "n", flag == "y": // no channel binding; y: client could, thinks we cannot
	case strings.HasPrefix(flag, "p="):
		return nil, failed("channel binding is not supported")
	default:
		return nil, failed("bad gs2 channel binding flag %q", flag)
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, failed("client-first-message without gs2 header")
	}
	if authz != "" && !strings.HasPrefix(authz, "a=") {
		return nil, failed("bad gs2 authzid %q", authz)
	}
	s.gs2Header = flag + "," + authz + ","
	s.clientBare = bare

	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		if len(attrs) > 0 && strings.HasPrefix(attrs[0], "m=") {
			return nil, failed("mandatory extension %q is not supported", attrs[0])
		}
		return nil, failed("client-first-message-bare is not n=user,r=nonce")
	}
	user, err := unescapeName(attrs[0][2:])
	if err != nil {
		return nil, err
	}
	s.user = user
	cnonce := attrs[1][2:]
	if cnonce == "" || !printable(cnonce) {
		return nil, failed("bad client nonce")
	}
	for _, ext := range attrs[2:] {
		// Kafka's only extension marks delegation tokens, which the
		// proxy does not issue.
		if strings.HasPrefix(ext, "tokenauth=") && ext != "tokenauth=false" {
			return nil, failed("delegation tokens are not supported")
		}
	}
	if authz != "" {
		az, err := unescapeName(authz[2:])
		if err != nil {
			return nil, err
		}
		if az != user {
			return nil, failed("authorization id %q is not the user name", az)
		}
	}
	cred, ok := s.creds[user]
	if !ok {
		return nil, failed("invalid user name or password")
	}
	s.cred = cred
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(randomBytes(18))
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.salt) + ",i=" + strconv.Itoa(cred.iterations)
	return []byte(s.serverFirst), nil
}

func (s *scramSession) final(msg string) ([]byte, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, failed("client-final-message without proof")
	}
	withoutProof, proof64 := msg[:i], msg[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, failed("client-final-message is not c=...,r=...,p=...")
	}
	if attrs[0][2:] != base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) {
		return nil, failed("channel binding does not repeat the gs2 header")
	}
	// Kafka checks only that the nonce ends with the server's
	// (ScramSaslServer), and librdkafka 2.0.2, for one, sends the client
	// nonce again in front of it. The server's random part, which the
	// proof covers, is what makes the proof fresh.
	if !strings.HasSuffix(attrs[1][2:], s.nonce) {
		return nil, failed("client-final nonce does not end with the server nonce")
	}
	proof, err := base64.StdEncoding.DecodeString(proof64)
	if err != nil || len(proof) != len(s.cred.storedKey) {
		return nil, failed("malformed client proof")
	}
	authMessage := []byte(s.clientBare + "," + s.serverFirst + "," + withoutProof)
	clientSig := hmacSum(s.hash, s.cred.storedKey, authMessage)
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, clientSig)
	h := s.hash()
	h.Write(clientKey)
	if subtle.ConstantTimeCompare(h.Sum(nil), s.cred.storedKey) != 1 {
		return nil, failed("invalid user name or password")
	}
	serverSig := hmacSum(s.hash, s.cred.serverKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), nil
}

// unescapeName decodes a saslname: "=2C" is ",", "=3D" is "=", any other
// "=" is an error (RFC 5802 section 5.1).
func unescapeName(name string) (string, error) {
	if !strings.Contains(name, "=") {
		return name, nil
	}
	var b bytes.Buffer
	for i := 0; i < len(name); i++ {
		if name[i] != '=' {
			b.WriteByte(name[i])
			continue
		}
		switch {
		case strings.HasPrefix(name[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(name[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", failed("bad escape in user name %q", name)
		}
		i += 2
	}
	return b.String(), nil
}

// printable: RFC 5802's nonce characters, printable ASCII except ",".
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return true
}
