package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"vhpc/security/pki"
	"vhpc/security/regtoken"
)

// defaultPKIDir is where `hpcd tls` keeps the CA unless --ca/--out or
// $HPC_PKI say otherwise.
func defaultPKIDir() string {
	if d := os.Getenv("HPC_PKI"); d != "" {
		return d
	}
	return "/etc/vhpc/pki"
}

// tlsCmd is `hpcd tls`: the cluster CA and its certificates (package
// security/pki). It works on files only and never dials a member.
func tlsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tls", Short: "the cluster CA: create it, issue, revoke and show certificates"}
	cmd.AddCommand(tlsInitCmd(), tlsIssueCmd(), tlsRevokeCmd(), tlsShowCmd())
	return cmd
}

// splitHosts sorts --host values into DNS names and IPs.
func splitHosts(hosts []string) (dns []string, ips []net.IP) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

func tlsInitCmd() *cobra.Command {
	var out, name string
	var hosts []string
	var ttl time.Duration
	hostname, _ := os.Hostname()
	cmd := &cobra.Command{
		Use:   "init --out DIR [--name ID] [--host NAME|IP ...]",
		Short: "create a cluster CA and this member's server certificate (refuses to overwrite a CA)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id := pki.Identity{Role: pki.RoleServer, Name: name}
			if err := id.Validate(); err != nil {
				return usageError{fmt.Errorf("--name: %w", err)}
			}
			dns, ips := splitHosts(hosts)
			if len(dns)+len(ips) == 0 {
				return usageError{errors.New("--host: give the names or IPs clients dial")}
			}
			ca, err := pki.InitCA(out, "vhpc cluster CA", pki.Options{})
			if err != nil {
				return err
			}
			is, err := ca.Issue(pki.Request{Identity: id, TTL: ttl, DNSNames: dns, IPs: ips})
			if err != nil {
				return err
			}
			crt, key, err := is.Write(out, id.BaseName())
			if err != nil {
				return err
			}
			if err := regtoken.Create(out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "CA          %s (key %s, keep it private)\n", filepath.Join(out, pki.CACertFile), filepath.Join(out, pki.CAKeyFile))
			fmt.Fprintf(w, "registry    %s signs registry tokens (key %s, private; copy both to every member); the registry's auth.token.rootcertbundle is the .crt\n",
				filepath.Join(out, regtoken.CertFile), filepath.Join(out, regtoken.KeyFile))
			fmt.Fprintf(w, "server %-5s %s, %s (hosts %s, until %s)\n", name, crt, key, strings.Join(hosts, ","), is.Cert.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(w, "next: hpcd tls issue --ca %s --agent NODE   (one per node)\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", defaultPKIDir(), "directory for the CA (created 0700)")
	cmd.Flags().StringVar(&name, "name", hostname, "this member's id (the server certificate's identity)")
	cmd.Flags().StringSliceVar(&hosts, "host", []string{"localhost", "127.0.0.1", "::1", hostname}, "host names and IPs of this member (comma-separated or repeated)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "server certificate lifetime (default 90 days)")
	return cmd
}

func tlsIssueCmd() *cobra.Command {
	var caDir, out string
	var ttl time.Duration
	var hosts []string
	names := map[pki.Role]*string{}
	cmd := &cobra.Command{
		Use:   "issue --agent NAME | --user NAME | --operator NAME | --server NAME --host H [--ca DIR] [--out DIR] [--ttl D]",
		Short: "issue a certificate (cert + 0600 key) for an agent, user, operator or member",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var id pki.Identity
			for _, r := range pki.Roles() {
				if n := *names[r]; n != "" {
					if !id.IsZero() {
						return usageError{fmt.Errorf("give one of --agent, --user, --operator, --server (got --%s and --%s)", id.Role, r)}
					}
					id = pki.Identity{Role: r, Name: n}
				}
			}
			if id.IsZero() {
				return usageError{errors.New("give one of --agent NAME, --user NAME, --operator NAME, --server NAME")}
			}
			if err := id.Validate(); err != nil {
				return usageError{err}
			}
			ca, err := pki.LoadCA(caDir, pki.Options{})
			if err != nil {
				return err
			}
			dns, ips := splitHosts(hosts)
			is, err := ca.Issue(pki.Request{Identity: id, TTL: ttl, DNSNames: dns, IPs: ips})
			if err != nil {
				return err
			}
			if out == "" {
				out = caDir
			}
			crt, key, err := is.Write(out, id.BaseName())
			if err != nil {
				return err
			}
			if filepath.Clean(out) != filepath.Clean(caDir) {
				if err := pki.WriteFileAtomic(filepath.Join(out, pki.CACertFile), ca.CertPEM, 0o644); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, %s (serial %s, until %s)\n", id, crt, key, pki.Serial(is.Cert), is.Cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		},
	}
	for _, r := range pki.Roles() {
		names[r] = new(string)
		cmd.Flags().StringVar(names[r], string(r), "", fmt.Sprintf("issue a %s certificate for NAME", r))
	}
	cmd.Flags().StringVar(&caDir, "ca", defaultPKIDir(), "the CA directory (from hpcd tls init)")
	cmd.Flags().StringVar(&out, "out", "", "where to write NAME.crt, NAME.key and ca.crt (default: the CA directory)")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (default: users and operators 12h, agents and servers 90 days)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "--server only: host names and IPs clients dial")
	return cmd
}

func tlsRevokeCmd() *cobra.Command {
	var caDir, reason string
	cmd := &cobra.Command{
		Use:   "revoke CERT-FILE|SERIAL [--reason TEXT]",
		Short: "add a certificate to revoked.txt (members refuse it from their next call; copy the file to every member)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial := args[0]
			if data, err := os.ReadFile(args[0]); err == nil {
				certs, err := pki.ParseCertificates(data)
				if err != nil {
					return fmt.Errorf("revoke %s: %w", args[0], err)
				}
				serial = pki.Serial(certs[0])
			}
			path := filepath.Join(caDir, pki.RevokedFile)
			if err := pki.Revoke(path, serial, reason, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s in %s\n", serial, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&caDir, "ca", defaultPKIDir(), "the CA directory")
	cmd.Flags().StringVar(&reason, "reason", "", "why (kept as a comment)")
	return cmd
}

func tlsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show CERT-FILE",
		Short: "print a certificate's identity, serial, hosts and validity",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			certs, err := pki.ParseCertificates(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			var b bytes.Buffer
			for _, c := range certs {
				who := "CA " + c.Subject.CommonName
				if !c.IsCA {
					id, err := pki.IdentityOf(c)
					if err != nil {
						return fmt.Errorf("%s: %w", args[0], err)
					}
					who = id.URI().String()
				}
				fmt.Fprintf(&b, "%s serial %s valid %s .. %s", who, pki.Serial(c), c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
				var hosts []string
				hosts = append(hosts, c.DNSNames...)
				for _, ip := range c.IPAddresses {
					hosts = append(hosts, ip.String())
				}
				if len(hosts) > 0 {
					fmt.Fprintf(&b, " hosts %s", strings.Join(hosts, ","))
				}
				b.WriteString("\n")
			}
			_, err = cmd.OutOrStdout().Write(b.Bytes())
			return err
		},
	}
}
