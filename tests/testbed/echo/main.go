// Command echo is the real-pod test bed's workload image (kplane.local/echo): `echo serve ADDR`
// answers every GET with "echo from <hostname>"; `echo get URL` prints what URL answers once it answers
// 200, and fails if it does not within 30 s.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: echo serve ADDR | echo get URL")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		srv := &http.Server{Addr: os.Args[2], ReadHeaderTimeout: 5 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "echo from %s\n", host) })}
		if err := srv.ListenAndServe(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "get": // tries for 30 s: a new Service reaches the node's kube-proxy within its sync period
		client := &http.Client{Timeout: 5 * time.Second}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
			code, body, err := get(client, os.Args[2])
			if err == nil && code == http.StatusOK {
				fmt.Printf("%d %s", code, body)
				return
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, code, body, err)
				os.Exit(1)
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: echo serve ADDR | echo get URL")
		os.Exit(2)
	}
}

func get(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body), err
}
