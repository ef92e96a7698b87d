package pki

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// MaxHosts caps the subject alternative names of a server certificate.
const MaxHosts = 100

// DefaultHosts are used when EnsureServerTLS is given none.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// sans is a normalised host list split into DNS names and IP addresses.
type sans struct {
	dns []string
	ips []net.IP
}

// parseHosts validates and normalises hosts: DNS names lower-cased without a
// trailing dot, an optional "*" as the whole leftmost label, IPs in canonical
// form ("[::1]" accepted). Duplicates are dropped.
func parseHosts(hosts []string) (sans, error) {
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	if len(hosts) > MaxHosts {
		return sans{}, fmt.Errorf("pki: %d hosts requested, at most %d allowed", len(hosts), MaxHosts)
	}
	var s sans
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(s.ips, ip.Equal) {
				s.ips = append(s.ips, ip)
			}
			continue
		}
		name, err := checkDNSName(h)
		if err != nil {
			return sans{}, err
		}
		if !slices.Contains(s.dns, name) {
			s.dns = append(s.dns, name)
		}
	}
	return s, nil
}

func checkDNSName(h string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(h, "."))
	if name == "" || len(name) > 253 {
		return "", fmt.Errorf("pki: host %q is not a valid DNS name or IP address", h)
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if i == 0 && l == "*" {
			if len(labels) < 2 {
				return "", fmt.Errorf("pki: wildcard host %q needs a domain after \"*.\"", h)
			}
			continue
		}
		if !validLabel(l) {
			return "", fmt.Errorf("pki: host %q is not a valid DNS name or IP address", h)
		}
	}
	return name, nil
}

func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// coveredBy reports whether a certificate's SANs name every requested host
// exactly (a requested wildcard needs the same wildcard SAN).
func (s sans) coveredBy(dns []string, ips []net.IP) bool {
	for _, d := range s.dns {
		if !slices.ContainsFunc(dns, func(c string) bool { return strings.EqualFold(c, d) }) {
			return false
		}
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(ips, ip.Equal) {
			return false
		}
	}
	return true
}
