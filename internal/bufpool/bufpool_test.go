package bufpool

import "testing"

type meter struct{ held int }

func (m *meter) Release(n int) { m.held -= n }

// A frame in pieces goes back whole: Put credits every piece's charge and
// recycles them, and the Buf comes back with no pieces.
func TestPutPutsBackThePieces(t *testing.T) {
	p := New()
	var m meter
	charge := func(b *Buf) *Buf {
		m.held += cap(b.B)
		b.Charge(&m, cap(b.B))
		return b
	}
	head := charge(p.Get(100))
	piece := charge(p.Get(3 << 20))
	head.More = append(head.More, piece, charge(Wrap(make([]byte, 10))))
	p.Put(head)
	if m.held != 0 {
		t.Fatalf("%d bytes still charged after Put", m.held)
	}
	if again := p.Get(3 << 20); again != piece {
		t.Fatal("a piece was not recycled")
	}
	if again := p.Get(100); again != head || len(again.More) != 0 {
		t.Fatalf("the head came back with %d pieces", len(again.More))
	}
}
