package writer

import "context"

// anyErased reports whether a message of msgs[lo:hi] holds a reading of a
// resident erased since it was added to the batch.
func (s *streamWriter) anyErased(b *batch, lo, hi int) bool {
	if s.w.o.Erased == nil {
		return false
	}
	for i := lo; i < hi; i++ {
		if s.erasedIn(b, i) {
			return true
		}
	}
	return false
}

func (s *streamWriter) erasedIn(b *batch, i int) bool {
	if s.w.o.Erased(b.rids[i]) {
		return true
	}
	for _, rid := range b.others[i] {
		if s.w.o.Erased(rid) {
			return true
		}
	}
	return false
}

// writeWithoutErased drops the erased residents' messages of msgs[lo:hi]
// and writes the runs between them. A partition batch that also holds
// others' readings is not dropped but handed back (Nak): redelivered, it
// is encoded again without the erased resident's readings.
func (s *streamWriter) writeWithoutErased(ctx context.Context, b *batch, lo, hi int) error {
	run := lo
	for i := lo; i <= hi; i++ {
		if i < hi && !s.erasedIn(b, i) {
			continue
		}
		if run < i {
			if err := s.write(ctx, b, run, i); err != nil {
				return err
			}
		}
		if i < hi {
			if len(b.others[i]) > 0 {
				_ = b.msgs[i].Nak()
			} else {
				s.drop(b.msgs[i], DropErasedResident)
			}
		}
		run = i + 1
	}
	return nil
}
