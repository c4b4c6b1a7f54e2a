package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// The parallel-logins probe (issue 9, item 9): 200 wrong passwords for one
// user at once from one address. It holds when at most the login limit (5)
// reached the password check (401) and the rest were refused before it
// (429, or 503 login_busy while checks queue), the API kept answering
// /healthz quickly meanwhile, and the real user still logs in from another
// address (127.0.0.2).
func init() { registerProbe("parallel-logins", probeParallelLogins) }

const (
	probeLoginGuesses = 200
	probeLoginLimit   = 5
)

func probeParallelLogins(ctx context.Context, t probeTarget) probeResult {
	const user, password = "probe-victim", "probe-victim-password"
	st, err := loginProbePost(ctx, http.DefaultClient, t.HTTP+"/api/v1/users", t.AdminToken,
		map[string]string{"id": user, "name": "Probe Victim", "role": "coordinator", "password": password})
	if err != nil || (st != http.StatusCreated && st != http.StatusConflict) {
		return probeResult{Detail: fmt.Sprintf("could not create the victim user: %d %v", st, err)}
	}

	attacker := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: probeLoginGuesses}}
	var mu sync.Mutex
	count := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range probeLoginGuesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, err := loginProbePost(ctx, attacker, t.HTTP+"/api/v1/auth/login", "",
				map[string]string{"id": user, "password": fmt.Sprintf("wrong-guess-%03d", i)})
			if err != nil {
				st = -1
			}
			mu.Lock()
			count[st]++
			mu.Unlock()
		}()
	}
	close(start)
	// While the flood runs: is the process still answering?
	var slowest time.Duration
	healthOK := true
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for flooding := true; flooding; {
		select {
		case <-done:
			flooding = false
		case <-time.After(100 * time.Millisecond):
			t0 := time.Now()
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(t.HTTP + "/healthz")
			if err != nil || resp.StatusCode != http.StatusOK {
				healthOK = false
			}
			if err == nil {
				resp.Body.Close()
			}
			slowest = max(slowest, time.Since(t0))
		}
	}

	// The real user, from another address.
	other := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	realSt, realErr := loginProbePost(ctx, other, t.HTTP+"/api/v1/auth/login", "", map[string]string{"id": user, "password": password})

	checked := count[http.StatusUnauthorized]
	refused := count[http.StatusTooManyRequests] + count[http.StatusServiceUnavailable]
	detail := fmt.Sprintf("%d parallel wrong passwords: %d checked (401), %d refused (429/503), %d other; slowest /healthz %s; real user from 127.0.0.2: %d",
		probeLoginGuesses, checked, refused, probeLoginGuesses-checked-refused, slowest.Round(time.Millisecond), realSt)
	if realErr != nil {
		detail += " (" + realErr.Error() + ")"
	}
	pass := checked <= probeLoginLimit && checked+refused == probeLoginGuesses &&
		healthOK && slowest < 2*time.Second && realSt == http.StatusOK
	return probeResult{Pass: pass, Detail: detail}
}

// loginProbePost sends a JSON POST and returns the status.
func loginProbePost(ctx context.Context, c *http.Client, url, token string, body any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
