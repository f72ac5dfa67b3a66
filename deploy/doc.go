// Package deploy holds the container images and Kubernetes manifests of
// sam (README.md). It has no code: its test parses the Dockerfiles and
// manifests and checks them against the sam binary, the server's routes
// and the Makefile.
package deploy
