//go:build tools

// Package tools pins the lakeFS server as a dependency of this wrapper module.
package tools

import _ "github.com/treeverse/lakefs/cmd/lakefs"
