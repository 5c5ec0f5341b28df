//go:build js && wasm

package main

// serve is never reached in the browser, where app.RunWhenOnBrowser runs
// the page for good; the server code stays out of the wasm.
func serve() {}
