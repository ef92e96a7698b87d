// Command keyhaven is the keyhaven server and its az-shaped CLI in one binary.
package main

import (
	"os"

	"github.com/keyhaven/keyhaven/internal/cli"
	"github.com/keyhaven/keyhaven/internal/server"
)

func main() {
	root := cli.NewRoot(server.ServeCommand(), server.AdminCommand())
	os.Exit(cli.Execute(root))
}
