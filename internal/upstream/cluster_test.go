package upstream

import (
	"slices"
	"testing"
)

// TestSeedsAfterReplacement: once every seed broker has left, a bootstrap
// connection tries the current brokers first and the departed seeds last;
// a seed that is no broker's address (a DNS alias) stays first.
func TestSeedsAfterReplacement(t *testing.T) {
	b := NewBrokers([]string{"alias:9092", "old-0:9092", "old-1:9092"})
	if removed := b.SetMembers(map[int32]string{0: "old-0:9092", 1: "old-1:9092"}); len(removed) != 0 {
		t.Fatalf("first SetMembers removed %v", removed)
	}
	removed := b.SetMembers(map[int32]string{3: "new-3:9092", 4: "new-4:9092"})
	if !slices.Equal(removed, []int32{0, 1}) {
		t.Fatalf("removed %v, want [0 1]", removed)
	}
	got := b.Seeds()
	want := []string{"alias:9092", "new-3:9092", "new-4:9092", "old-0:9092", "old-1:9092"}
	if !slices.Equal(got, want) {
		t.Fatalf("Seeds() = %v, want %v", got, want)
	}
	if b.Current("old-0:9092") || !b.Current("alias:9092") || !b.Current("new-4:9092") {
		t.Fatal("Current: departed seeds must not count, the alias and members must")
	}
}
