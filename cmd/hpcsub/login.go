package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/security/login"
)

// bodyUser is the user a submission names: none when the client has a
// credential (the master takes the user from it and refuses another
// name), the login name for a plaintext master (--insecure).
func bodyUser() string {
	if c, err := client.DefaultCredentials(); err == nil && c.Secure() {
		return ""
	}
	return currentUser()
}

// loginSocket finds the master's login socket: --socket, $VHPC_LOGIN_SOCKET,
// the path `hpcd dev` wrote into the credentials directory, or
// /run/vhpc/login.sock (hpcd server --login-socket).
func loginSocket(flag, dir string) string {
	if flag != "" {
		return flag
	}
	if s := os.Getenv("VHPC_LOGIN_SOCKET"); s != "" {
		return s
	}
	if f, err := os.Open(filepath.Join(dir, login.SocketFile)); err == nil {
		defer f.Close()
		if sc := bufio.NewScanner(f); sc.Scan() && strings.TrimSpace(sc.Text()) != "" {
			return strings.TrimSpace(sc.Text())
		}
	}
	return "/run/vhpc/login.sock"
}

func loginCmd(a *app) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "get a short-lived user certificate from the master on this host (12 h)",
		Long: `login asks the master's login socket on this host for a user certificate
for your login name (the kernel tells the master who you are; no password)
and writes it into the credentials directory ($VHPC_CREDENTIALS or
~/.config/vhpc). Your key never leaves this machine. On a host without a
master, ask an operator: hpcd tls issue --user NAME --out DIR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir := client.DefaultCredentialsDir()
			if dir == "" || dir == "none" {
				return usage("no credentials directory: set %s or HOME", client.CredentialsEnv)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			id, until, err := login.Login(ctx, loginSocket(socket, dir), dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "Logged in as %s until %s (credential in %s)\n", id, until.Local().Format(time.DateTime), dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "the master's login socket (default: from the credentials directory, $VHPC_LOGIN_SOCKET, or /run/vhpc/login.sock)")
	return cmd
}

func whoamiCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "user, departments, roles and credential expiry, as the master sees them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			defer c.Close()
			var who *api.WhoAmIResponse
			err = c.Do(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				var err error
				who, err = api.NewAuthServiceClient(conn).WhoAmI(ctx, &api.WhoAmIRequest{})
				return err
			})
			if err != nil {
				return err
			}
			if a.asJSON {
				printJSON(a.out, who)
				return nil
			}
			fmt.Fprintf(a.out, "%s %s\n", who.GetRole(), who.GetName())
			if who.GetRole() == "user" || who.GetRole() == "operator" {
				if !who.GetKnown() {
					fmt.Fprintln(a.out, "departments: none (not a user of this cluster: an operator runs `hpcd user add`)")
				} else {
					fmt.Fprintf(a.out, "departments: %s\n", strings.Join(who.GetDepartments(), ", "))
					if len(who.GetAdminOf()) > 0 {
						fmt.Fprintf(a.out, "admin of: %s\n", strings.Join(who.GetAdminOf(), ", "))
					}
				}
			}
			if na := who.GetNotAfter(); na != nil {
				left := time.Until(na.AsTime()).Round(time.Minute)
				fmt.Fprintf(a.out, "credential expires %s (in %s; renew with `hpcsub login`)\n", na.AsTime().Local().Format(time.DateTime), left)
			}
			fmt.Fprintf(a.out, "credential: %s\n", c.Credentials())
			return nil
		},
	}
}
