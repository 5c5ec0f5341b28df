package testdata

import (
	"encoding/json"
	"fmt"
	"io/fs"
)

// BadCase is one body of the bad-input corpus under bad/, as listed in
// bad/cases.json.
type BadCase struct {
	// File is the body's file name under bad/.
	File string `json:"file"`
	// ContentType is the Content-Type header to send the body with.
	ContentType string `json:"content_type"`
	// Status is what the receiver must answer: 400, 413 or 415.
	Status int `json:"status"`
	// Field is, for a 400, the JSON field the error names; "" for the body
	// as a whole.
	Field string `json:"field"`
	// Problem is, for a 400, words the error's problem contains.
	Problem string `json:"problem"`
	// Description says what is wrong, for people.
	Description string `json:"description"`
	// Body is the file's content, exactly as it is to be sent.
	Body []byte `json:"-"`
}

// BadCases returns the bad-input corpus, bodies loaded.
func BadCases() ([]BadCase, error) {
	raw, err := FS.ReadFile("bad/cases.json")
	if err != nil {
		return nil, fmt.Errorf("testdata: %w", err)
	}
	var cases []BadCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		return nil, fmt.Errorf("testdata: bad/cases.json: %w", err)
	}
	for i := range cases {
		if cases[i].Body, err = fs.ReadFile(FS, "bad/"+cases[i].File); err != nil {
			return nil, fmt.Errorf("testdata: bad/cases.json names %q: %w", cases[i].File, err)
		}
	}
	return cases, nil
}
