package router

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// DefaultGroup receives every API no group names, and unknown keys.
const DefaultGroup = "default"

// Group indexes a session's lanes; 0 is always DefaultGroup.
type Group uint8

// Classifier maps API keys to groups. It is immutable and shared.
type Classifier struct {
	byKey [keySpan]Group
	names []string
}

// NewClassifier builds a classifier from group → API names. API names are
// kmsg's (the Kafka protocol names) and match case-insensitively. Every API
// may appear in at most one group.
func NewClassifier(p *Protocol, groups map[string][]string) (*Classifier, error) {
	c := &Classifier{names: []string{DefaultGroup}}
	byName := make(map[string]int16, keySpan)
	for k := range int16(keySpan) {
		if p.Known(k) {
			byName[strings.ToLower(p.Name(k))] = k
		}
	}
	groupNames := make([]string, 0, len(groups))
	for g := range groups {
		if g != DefaultGroup {
			groupNames = append(groupNames, g)
		}
	}
	sort.Strings(groupNames)
	if len(groupNames)+1 > 255 {
		return nil, fmt.Errorf("too many groups: %d", len(groupNames))
	}
	var errs []string
	owner := map[int16]string{}
	for _, g := range groupNames {
		id := Group(len(c.names))
		c.names = append(c.names, g)
		for _, api := range groups[g] {
			k, ok := byName[strings.ToLower(api)]
			if !ok {
				errs = append(errs, fmt.Sprintf("group %q: unknown API %q", g, api))
				continue
			}
			if prev, dup := owner[k]; dup {
				errs = append(errs, fmt.Sprintf("API %q is in groups %q and %q", api, prev, g))
				continue
			}
			owner[k] = g
			c.byKey[k] = id
		}
	}
	for _, api := range groups[DefaultGroup] {
		if _, ok := byName[strings.ToLower(api)]; !ok {
			errs = append(errs, fmt.Sprintf("group %q: unknown API %q", DefaultGroup, api))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return c, nil
}

// Classify returns the group of an API key; unknown keys go to DefaultGroup.
func (c *Classifier) Classify(key int16) Group {
	if key < 0 || key >= keySpan {
		return 0
	}
	return c.byKey[key]
}

// Len is the number of groups, including DefaultGroup.
func (c *Classifier) Len() int { return len(c.names) }

// Name of a group.
func (c *Classifier) Name(g Group) string { return c.names[g] }

// Names of all groups, indexed by Group.
func (c *Classifier) Names() []string { return slices.Clone(c.names) }
