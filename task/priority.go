package task

import (
	"errors"
	"strconv"
)

// Priority is how urgent a task is. The zero value is invalid, so that a
// task whose priority was never set is caught by Validate.
type Priority uint8

// The four priorities, in ascending order of urgency.
const (
	Low Priority = iota + 1
	Moderate
	Major
	Critical
)

// Priorities lists the valid priorities in ascending order, the order of the
// dashboard's bars.
var Priorities = [NumPriorities]Priority{Low, Moderate, Major, Critical}

// NumPriorities is the number of valid priorities.
const NumPriorities = 4

var priorityNames = [...]string{"", "Low", "Moderate", "Major", "Critical"}

// subjectTokens are the lower-case names used in NATS subjects.
var subjectTokens = [...]string{"", "low", "moderate", "major", "critical"}

// ErrUnknownPriority is returned by ParsePriority for anything but the four
// names, spelled exactly.
var ErrUnknownPriority = errors.New("must be one of Low, Moderate, Major, Critical")

// ParsePriority returns the priority named s. Names are case-sensitive, as
// the tutorial's producer spells them.
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "Low":
		return Low, nil
	case "Moderate":
		return Moderate, nil
	case "Major":
		return Major, nil
	case "Critical":
		return Critical, nil
	}
	return 0, ErrUnknownPriority
}

// Valid reports whether p is one of the four priorities.
func (p Priority) Valid() bool { return p >= Low && p <= Critical }

// Index returns p's position in Priorities, 0 to 3. It panics on an invalid
// priority.
func (p Priority) Index() int {
	if !p.Valid() {
		panic("task: index of invalid priority " + strconv.Itoa(int(p)))
	}
	return int(p) - 1
}

// String returns the priority's name, or "Priority(n)" when invalid.
func (p Priority) String() string {
	if p.Valid() {
		return priorityNames[p]
	}
	return "Priority(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText encodes a valid priority as its name.
func (p Priority) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, errors.New("task: invalid priority " + strconv.Itoa(int(p)))
	}
	return []byte(priorityNames[p]), nil
}

// UnmarshalText decodes a priority from its exact name.
func (p *Priority) UnmarshalText(b []byte) error {
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
