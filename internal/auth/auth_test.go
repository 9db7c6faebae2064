package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// converse runs a franz-go client mechanism against a server session.
func converse(t *testing.T, u *Users, mech sasl.Mechanism) (user string, err error) {
	t.Helper()
	srv, ok := u.Start(mech.Name())
	if !ok {
		t.Fatalf("%s not enabled", mech.Name())
	}
	cl, msg, err := mech.Authenticate(context.Background(), "kproxy:9092")
	if err != nil {
		t.Fatal(err)
	}
	for clientDone := false; !clientDone || len(msg) > 0; {
		answer, done, err := srv.Step(msg)
		if err != nil {
			return srv.User(), err
		}
		msg = nil
		if !clientDone {
			if clientDone, msg, err = cl.Challenge(answer); err != nil {
				t.Fatalf("client rejected the server's answer: %v", err)
			}
		}
		if clientDone && len(msg) == 0 && !done {
			t.Fatal("client finished, server did not")
		}
	}
	return srv.User(), nil
}

func TestMechanismsWithFranzGoClients(t *testing.T) {
	users, err := NewUsers(map[string]string{"app": "pw-app", "we,ird=name": "pw2"}, []string{Plain, ScramSHA256, ScramSHA512})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		mech    sasl.Mechanism
		wantErr bool
	}{
		{"plain ok", plain.Auth{User: "app", Pass: "pw-app"}.AsMechanism(), false},
		{"plain wrong password", plain.Auth{User: "app", Pass: "nope"}.AsMechanism(), true},
		{"plain unknown user", plain.Auth{User: "who", Pass: "pw-app"}.AsMechanism(), true},
		{"plain authzid differs", plain.Auth{Zid: "admin", User: "app", Pass: "pw-app"}.AsMechanism(), true},
		{"scram256 ok", scram.Auth{User: "app", Pass: "pw-app"}.AsSha256Mechanism(), false},
		{"scram512 ok", scram.Auth{User: "app", Pass: "pw-app"}.AsSha512Mechanism(), false},
		{"scram256 escaped name", scram.Auth{User: "we,ird=name", Pass: "pw2"}.AsSha256Mechanism(), false},
		{"scram256 wrong password", scram.Auth{User: "app", Pass: "pw-ap"}.AsSha256Mechanism(), true},
		{"scram512 unknown user", scram.Auth{User: "nobody", Pass: "x"}.AsSha512Mechanism(), true},
		{"scram256 delegation token", scram.Auth{User: "app", Pass: "pw-app", IsToken: true}.AsSha256Mechanism(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := converse(t, users, c.mech)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if err != nil && !errors.Is(err, ErrFailed) {
				t.Fatalf("error %v does not wrap ErrFailed", err)
			}
		})
	}
}

func TestScramRejectsTampering(t *testing.T) {
	users, err := NewUsers(map[string]string{"app": "pw"}, []string{ScramSHA256})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := users.Start(Plain); ok {
		t.Fatal("PLAIN offered while not enabled")
	}
	start := func() (Session, string) {
		s, _ := users.Start(ScramSHA256)
		first, _, err := s.Step([]byte("n,,n=app,r=clientnonce"))
		if err != nil {
			t.Fatal(err)
		}
		return s, string(first)
	}
	for name, final := range map[string]func(serverFirst string) string{
		"wrong nonce":   func(string) string { return "c=biws,r=clientnonceXXX,p=AAAA" },
		"wrong binding": func(sf string) string { return "c=eSws," + strings.Split(sf, ",")[0] + ",p=AAAA" },
		"bad proof": func(sf string) string {
			return "c=biws," + strings.Split(sf, ",")[0] + ",p=" + strings.Repeat("A", 43) + "="
		},
		"no proof":          func(sf string) string { return "c=biws," + strings.Split(sf, ",")[0] },
		"proof not base64":  func(sf string) string { return "c=biws," + strings.Split(sf, ",")[0] + ",p=!!" },
		"binding requested": func(string) string { return "p=tls-unique,,n=app,r=x" },
	} {
		t.Run(name, func(t *testing.T) {
			s, sf := start()
			if _, done, err := s.Step([]byte(final(sf))); err == nil || done {
				t.Fatalf("accepted: done %v err %v", done, err)
			}
		})
	}
	for _, first := range []string{"p=tls-unique,,n=app,r=x", "n,,m=ext,n=app,r=x", "n,,n=a=ZZpp,r=x", "n,a=other,n=app,r=x", "garbage", "n,,n=app,r="} {
		s, _ := users.Start(ScramSHA256)
		if _, _, err := s.Step([]byte(first)); err == nil {
			t.Errorf("client-first %q accepted", first)
		}
	}
}
