// Package pagetest holds the dashboard's browser tests and benchmarks: the
// real page, built to WebAssembly and served by the real server, loaded in
// headless Chromium through chromedp, fed by a relay stand-in that speaks
// the relay's WebSocket frames (task.Frame) and batch endpoints.
//
// The tests need Debian's chromium (apt-get install -y chromium); they fail
// with that advice when it is missing. The wasm is built once per run, or
// taken from $HOOKPIPE_TEST_WEB_DIR when set (as make does after building
// it).
package pagetest
