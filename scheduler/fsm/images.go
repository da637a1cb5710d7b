package fsm

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// maxUsersListed bounds the job ids a refused RemoveImage names.
const maxUsersListed = 10

func applyPutImage(txn *state.Txn, e *PutImage) any {
	if e.Token != "" {
		if ref, ok := txn.ImageToken(e.Token); ok {
			return ImageResult{Image: txn.Image(ref), Duplicate: true}
		}
	}
	c := e.Image.Copy()
	if err := c.Check(); err != nil {
		return fmt.Errorf("image %s: %v: %w", c.Ref(), err, ErrConflict)
	}
	if c.Department == model.PublicDepartment {
		c.Public = true
	}
	res := ImageResult{Image: c}
	if old := txn.Image(c.Ref()); old != nil && old.Kind != c.Kind {
		return fmt.Errorf("%s is a %s; it cannot become a %s (remove it first): %w", c.Ref(), model.KindName(old.Kind), model.KindName(c.Kind), ErrConflict)
	}
	if old := txn.Image(c.Ref()); old != nil {
		res.Previous = old.Digest
		c.Created = old.Created
		c.Updated = e.Time
	} else {
		c.Created = e.Time
		c.Updated = time.Time{}
	}
	txn.PutImage(c)
	if e.Token != "" {
		txn.AddImageToken(e.Token, c.Ref())
	}
	return res
}

func applyRemoveImage(txn *state.Txn, e *RemoveImage) any {
	if e.Token != "" {
		if _, ok := txn.ImageToken(e.Token); ok {
			return ImageResult{Duplicate: true}
		}
	}
	old := txn.Image(e.Ref)
	if old == nil {
		return fmt.Errorf("image %s: %w", e.Ref, ErrNotFound)
	}
	var users []string
	n := 0
	for j := range txn.Read().ActiveJobs() {
		if j.ImageDigest != old.Digest && !slices.ContainsFunc(j.Datasets, func(d model.DatasetMount) bool { return d.Digest == old.Digest }) {
			continue
		}
		if n++; n <= maxUsersListed {
			users = append(users, fmt.Sprint(uint64(j.ID)))
		}
	}
	if n > 0 {
		more := ""
		if n > maxUsersListed {
			more = fmt.Sprintf(" and %d more", n-maxUsersListed)
		}
		return fmt.Errorf("%s %s (%s) is used by queued or running job %s%s; cancel them or wait for them to end: %w",
			model.KindName(old.Kind), e.Ref, old.Digest, strings.Join(users, ", "), more, ErrConflict)
	}
	txn.DeleteImage(e.Ref)
	if e.Token != "" {
		txn.AddImageToken(e.Token, e.Ref)
	}
	return ImageResult{Image: old}
}
