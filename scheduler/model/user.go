package model

import (
	"fmt"
	"regexp"
	"slices"
)

// User is a person known to the cluster: the departments they may submit
// to and the departments they administer (issue 16). The name is the one
// in their certificates (vhpc://user/NAME); departments are kept here, not
// in certificates, so `hpcd user add` takes effect without a new
// credential. Administering a department implies membership.
type User struct {
	Name        string   `json:"name"`
	Departments []string `json:"departments,omitempty"`
	AdminOf     []string `json:"adminOf,omitempty"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks the user and department names (the identity name rules
// of security/pki) and that the user belongs somewhere.
func (u *User) Validate() error {
	if !namePattern.MatchString(u.Name) {
		return fmt.Errorf("user name %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", u.Name)
	}
	for i, d := range append(slices.Clone(u.Departments), u.AdminOf...) {
		if d == "*" && i < len(u.Departments) {
			continue // member of every department (security/authz.AllDepartments)
		}
		if !namePattern.MatchString(d) {
			return fmt.Errorf("user %s: department %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", u.Name, d)
		}
	}
	if len(u.Departments)+len(u.AdminOf) == 0 {
		return fmt.Errorf("user %s: name at least one department (--department or --admin-of)", u.Name)
	}
	return nil
}

// Normalized returns a copy whose Departments include every AdminOf
// department, both sorted without duplicates.
func (u User) Normalized() User {
	deps := append(slices.Clone(u.Departments), u.AdminOf...)
	slices.Sort(deps)
	adm := slices.Clone(u.AdminOf)
	slices.Sort(adm)
	u.Departments, u.AdminOf = slices.Compact(deps), slices.Compact(adm)
	return u
}
