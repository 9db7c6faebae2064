package router

// Temporary until the rewriters land.
type AddressMap interface {
	Advertise(nodeID int32, host string, port int32) (string, int32, error)
}
type Rewriter struct{ p *Protocol }

func NewRewriter(p *Protocol) *Rewriter     { return &Rewriter{p} }
func (r *Rewriter) NeedsRewrite(int16) bool { return false }
func (r *Rewriter) Decoded(int16) bool      { return false }
func (r *Rewriter) Rewrite(f []byte, _, _ int16, _ AddressMap) ([]byte, bool, error) {
	return f, false, nil
}
