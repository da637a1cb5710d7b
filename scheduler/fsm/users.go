package fsm

import (
	"fmt"
	"time"

	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// PutUser adds or replaces a user and their departments (`hpcd user add`),
// or with Remove forgets the user (`hpcd user remove`). Jobs keep the user
// and department they were submitted with.
type PutUser struct {
	Time   time.Time  `json:"time"`
	User   model.User `json:"user"`
	Remove bool       `json:"remove,omitempty"`
}

// applyPutUser returns the stored *model.User (nil after a removal) or an
// error wrapping ErrNotFound (removing an unknown user) or ErrConflict (an
// invalid record; the leader checks first, so only a forged entry gets it).
func applyPutUser(txn *state.Txn, e *PutUser) any {
	if e.Remove {
		if !txn.DeleteUser(e.User.Name) {
			return fmt.Errorf("user %s: %w", e.User.Name, ErrNotFound)
		}
		return (*model.User)(nil)
	}
	u := e.User.Normalized()
	if err := u.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrConflict, err)
	}
	txn.PutUser(&u)
	return &u
}
