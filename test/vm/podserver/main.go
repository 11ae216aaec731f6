// SPDX-License-Identifier: Apache-2.0

// Command podserver is the lab's pod: it tells who it is and who it saw.
//
//	GET /         -> "<pod>\n"
//	GET /clientip -> "<client ip>\n" (the host of the remote address it saw)
//	UDP datagram  -> "<pod> <client ip:port>"
//
// Every HTTP answer also carries X-Pod-Name and X-Client-Addr headers. It
// exits cleanly on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	name := flag.String("name", "", "pod name to answer with (required)")
	httpAddr := flag.String("http", ":8080", "HTTP listen address")
	udpAddr := flag.String("udp", ":9000", "UDP echo listen address")
	flag.Parse()
	if *name == "" {
		log.Fatal("podserver: -name is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *name, *httpAddr, *udpAddr); err != nil {
		log.Fatalf("podserver: %v", err)
	}
}

func run(ctx context.Context, name, httpAddr, udpAddr string) error {
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	pc, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen udp: %w", err)
	}
	srv := &http.Server{Handler: handler(name), ReadHeaderTimeout: 5 * time.Second}
	log.Printf("podserver %s: http on %s, udp on %s", name, ln.Addr(), pc.LocalAddr())

	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve http: %w", err)
		}
	})
	wg.Go(func() {
		if err := serveUDP(pc, name); err != nil && !errors.Is(err, net.ErrClosed) {
			errc <- fmt.Errorf("serve udp: %w", err)
		}
	})

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	pc.Close()
	wg.Wait()
	log.Printf("podserver %s: stopped", name)
	return runErr
}

func handler(name string) http.Handler {
	mux := http.NewServeMux()
	client := func(r *http.Request) string {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
	tag := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Pod-Name", name)
		w.Header().Set("X-Client-Addr", r.RemoteAddr)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		tag(w, r)
		fmt.Fprintln(w, name)
	})
	mux.HandleFunc("GET /clientip", func(w http.ResponseWriter, r *http.Request) {
		tag(w, r)
		fmt.Fprintln(w, client(r))
	})
	return mux
}

// serveUDP answers every datagram with "<pod> <client addr>" until pc is
// closed.
func serveUDP(pc net.PacketConn, name string) error {
	buf := make([]byte, 2048)
	for {
		_, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := pc.WriteTo([]byte(name+" "+addr.String()), addr); err != nil {
			log.Printf("podserver %s: answer %s: %v", name, addr, err)
		}
	}
}
