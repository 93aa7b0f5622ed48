package remote

import "net/http"

// HTTPClient is the client's HTTP client (its TLS trust), for tests.
func HTTPClient(c *Client) *http.Client { return c.hc }
