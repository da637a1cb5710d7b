package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"vhpc/api"
)

// userCmd is `hpcd user`: the users and departments of the replicated
// state (AuthService, operators only).
func userCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{Use: "user", Short: "users and their departments (operators)"}
	def := os.Getenv("HPC_ADDR")
	if def == "" {
		def = "127.0.0.1:7070"
	}
	cmd.PersistentFlags().StringVar(&addr, "addr", def, "member gRPC address(es), comma-separated")
	call := func(ctx context.Context, fn func(ctx context.Context, c api.AuthServiceClient) error) error {
		c, err := dialMembers(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			return fn(ctx, api.NewAuthServiceClient(conn))
		})
	}
	show := func(u *api.UserRecord) {
		line := fmt.Sprintf("%s\tdepartments %s", u.GetName(), strings.Join(u.GetDepartments(), ","))
		if len(u.GetAdminOf()) > 0 {
			line += "\tadmin of " + strings.Join(u.GetAdminOf(), ",")
		}
		fmt.Println(line)
	}
	var depts, adminOf []string
	var replace bool
	add := &cobra.Command{
		Use: "add NAME --department DEPT [--admin-of DEPT]", Short: "add a user, or add departments to one", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(depts)+len(adminOf) == 0 {
				return usageError{errors.New("name at least one --department or --admin-of")}
			}
			return call(cmd.Context(), func(ctx context.Context, c api.AuthServiceClient) error {
				req := &api.PutUserRequest{Name: args[0], Departments: depts, AdminOf: adminOf}
				if !replace { // add to what the user has
					all, err := c.ListUsers(ctx, &api.ListUsersRequest{})
					if err != nil {
						return err
					}
					for _, u := range all.GetUsers() {
						if u.GetName() == args[0] {
							req.Departments = append(slices.Clone(u.GetDepartments()), depts...)
							req.AdminOf = append(slices.Clone(u.GetAdminOf()), adminOf...)
						}
					}
				}
				u, err := c.PutUser(ctx, req)
				if err == nil {
					show(u)
				}
				return err
			})
		},
	}
	add.Flags().StringSliceVar(&depts, "department", nil, "department the user may submit to (repeatable)")
	add.Flags().StringSliceVar(&adminOf, "admin-of", nil, "department the user administers: sees and manages its jobs and images (repeatable)")
	add.Flags().BoolVar(&replace, "replace", false, "replace the user's departments instead of adding to them")
	remove := &cobra.Command{
		Use: "remove NAME", Short: "forget a user (their jobs keep their owner)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd.Context(), func(ctx context.Context, c api.AuthServiceClient) error {
				_, err := c.RemoveUser(ctx, &api.RemoveUserRequest{Name: args[0]})
				return err
			})
		},
	}
	ls := &cobra.Command{
		Use: "ls", Short: "list users", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd.Context(), func(ctx context.Context, c api.AuthServiceClient) error {
				out, err := c.ListUsers(ctx, &api.ListUsersRequest{})
				for _, u := range out.GetUsers() {
					show(u)
				}
				return err
			})
		},
	}
	cmd.AddCommand(add, remove, ls)
	return cmd
}

// auditCmd is `hpcd operator audit [--since]`: the audit log of the
// member at --addr (each member logs the calls it answered).
func auditCmd(addr *string) *cobra.Command {
	var since string
	var asJSON bool
	cmd := &cobra.Command{
		Use: "audit [--since 1h|RFC3339]", Short: "print a member's audit log: every mutating call and every refusal", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := &api.ReadAuditRequest{}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				req.Since = timestamppb.New(t)
			}
			c, err := dialMembers(*addr)
			if err != nil {
				return err
			}
			defer c.Close()
			return c.Stream(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				st, err := api.NewAuthServiceClient(conn).ReadAudit(ctx, req)
				if err != nil {
					return err
				}
				for {
					r, err := st.Recv()
					if err != nil {
						if errors.Is(err, io.EOF) {
							return nil
						}
						return err
					}
					printAudit(r, asJSON)
				}
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records since a duration ago (1h, 30m) or a time (RFC 3339)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line, as in the file")
	return cmd
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (1h, 30m) or an RFC 3339 time", s)
}

func printAudit(r *api.AuditRecord, asJSON bool) {
	if asJSON {
		b, _ := protojson.Marshal(r)
		fmt.Println(string(b))
		return
	}
	who := r.GetIdentity()
	if who == "" {
		who = "anonymous"
	}
	if r.GetVia() != "" {
		who += " via " + r.GetVia()
	}
	line := fmt.Sprintf("%s  %-5s  %s  %s", r.GetTime().AsTime().Local().Format(time.DateTime), r.GetOutcome(), who, strings.TrimPrefix(r.GetMethod(), "/vhpc.v1."))
	if r.GetTarget() != "" {
		line += "  " + r.GetTarget()
	}
	if r.GetReason() != "" {
		line += "  (" + r.GetCode() + ": " + r.GetReason() + ")"
	}
	fmt.Println(line)
}
