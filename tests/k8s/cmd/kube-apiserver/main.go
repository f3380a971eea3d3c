// Command kube-apiserver runs the upstream API server, built at the version pinned in
// go.mod, for nodeagent's Kubernetes test tier and benchmarks.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
