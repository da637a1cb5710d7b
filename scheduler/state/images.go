package state

import (
	"iter"

	"vhpc/scheduler/model"
)

// Image returns the catalog record "department/name:tag", or nil.
func (s *Snapshot) Image(ref string) *model.Image {
	im, _ := s.images.Get([]byte(ref))
	return im
}

// Images iterates the catalog in key order ("department/name:tag").
func (s *Snapshot) Images() iter.Seq[*model.Image] {
	return func(yield func(*model.Image) bool) {
		it := s.images.Root().Iterator()
		for _, im, ok := it.Next(); ok; _, im, ok = it.Next() {
			if !yield(im) {
				return
			}
		}
	}
}

// ImageToken returns the catalog key a client token of an image entry
// (put or remove) named, if the token was seen.
func (s *Snapshot) ImageToken(token string) (string, bool) {
	return s.imageTokens.Get([]byte(token))
}

// Image returns the catalog record as the transaction sees it.
func (t *Txn) Image(ref string) *model.Image {
	im, _ := t.images.Get([]byte(ref))
	return im
}

// PutImage stores a catalog record (a copy the caller owns) under im.Ref().
func (t *Txn) PutImage(im *model.Image) { t.images.Insert([]byte(im.Ref()), im) }

// DeleteImage removes a catalog record.
func (t *Txn) DeleteImage(ref string) { t.images.Delete([]byte(ref)) }

// ImageToken looks an image entry's client token up, including tokens
// added in this transaction.
func (t *Txn) ImageToken(token string) (string, bool) {
	return t.imageTokens.Get([]byte(token))
}

// AddImageToken remembers an image entry's client token and the key it named.
func (t *Txn) AddImageToken(token, ref string) {
	t.imageTokens.Insert([]byte(token), ref)
}
