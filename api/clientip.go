package api

import (
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// parseTrustedProxies turns CARE_TRUSTED_PROXIES (IPs and CIDRs, checked by
// config.Validate) into prefixes; an entry that does not parse is skipped.
func parseTrustedProxies(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the address a request came from, for login limits, logs and
// the audit trail. Only when the peer is a trusted proxy is X-Forwarded-For
// read, from the right: each proxy appends the address it saw, so the
// rightmost address that is not a trusted proxy is the client; everything
// left of it was written by the client and is ignored. An entry that is not
// an IP address ends the walk at the last trusted hop.
func (s *Server) clientIP(c *fiber.Ctx) string {
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return c.Context().RemoteIP().String()
	}
	peer = peer.Unmap()
	if len(s.proxies) == 0 || !s.trusted(peer) {
		return peer.String()
	}
	var hops []string
	c.Context().Request.Header.VisitAll(func(k, v []byte) {
		if strings.EqualFold(string(k), fiber.HeaderXForwardedFor) {
			hops = append(hops, strings.Split(string(v), ",")...)
		}
	})
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = a.Unmap()
		if !s.trusted(client) {
			break
		}
	}
	return client.String()
}
