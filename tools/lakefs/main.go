// Command lakefs builds the pinned lakeFS server from its published Go module.
//
// lakeFS's go.mod carries a replace directive, so `go install module@version`
// refuses it; this tiny module requires lakeFS at the pinned version, repeats
// the replace, and links the upstream command unchanged.
package main

import "github.com/treeverse/lakefs/cmd/lakefs/cmd"

func main() {
	cmd.Execute()
}
