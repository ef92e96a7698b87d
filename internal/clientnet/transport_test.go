package clientnet

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
)

func TestTransportDialsVaultHostsToTheServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	// Only rewritten names can connect: the others do not resolve.
	tr, err := Transport(&url.URL{Scheme: "https", Host: "127.0.0.1:" + port}, nil, "vault.example")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, addr string
		connects   bool
	}{
		{"ok/vault host goes to the server", "myvault.vault.example:443", true},
		{"ok/vault host, any case, trailing dot", "MyVault.Vault.Example.:8443", true},
		{"ok/the vault domain itself", "vault.example:443", true},
		{"ok/localhost name goes to loopback", "anything.localhost:" + port, true},
		{"fail/another domain is dialed as is", "myvault.vault.example.evil.invalid:443", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tr.DialContext(context.Background(), "tcp", tc.addr)
			if tc.connects != (err == nil) {
				t.Fatalf("dial %s: %v", tc.addr, err)
			}
			if err == nil {
				c.Close()
				<-accepted
			}
		})
	}
}

func TestTransportKeepsRewrittenNamesFromProxies(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
	tr, err := Transport(&url.URL{Scheme: "https", Host: "kh.example"}, nil, "vault.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host     string
		viaProxy bool
	}{
		{"myvault.vault.example", false},
		{"x.localhost", false},
		{"login.example.org", true},
	} {
		req, _ := http.NewRequest("GET", "https://"+tc.host+"/", nil)
		u, err := tr.Proxy(req)
		if err != nil || (u != nil) != tc.viaProxy {
			t.Errorf("%s: proxy %v, %v", tc.host, u, err)
		}
	}
}

func TestTransportRefusesCAWithoutPEM(t *testing.T) {
	_, err := Transport(&url.URL{Scheme: "https", Host: "kh.example"}, []byte("not a certificate"), "")
	if !errors.Is(err, ErrNoPEM) {
		t.Fatalf("err = %v", err)
	}
}
