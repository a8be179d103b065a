package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tillkeep/tillkeep"
	"github.com/tillkeep/tillkeep/config"
)

// Exit statuses of the pos commands, so scripts can branch: 0 done, 3 the coupon was
// refused (422, or valid:false from validate), 1 anything else.
const (
	exitPosRefused = 3
	exitPosFailed  = 1
)

// posTokenEnv holds the POS token for the pos commands; it is also the config
// override of pos_token, so one variable serves the agent and the scripts.
const posTokenEnv = "TILLKEEP_POS_TOKEN"

// posMaxAnswerBytes bounds what the CLI reads of an answer.
const posMaxAnswerBytes = 1 << 20

func newPosCmd() *cobra.Command {
	conn := &posConnection{}
	cmd := &cobra.Command{
		Use:   "pos",
		Short: "Call the local till agent's POS API, as a POS would",
		Long: `Call the till agent's POS API from scripts and support sessions. Each command
prints the agent's JSON answer on stdout.

Exit status: 0 success; 3 the coupon was refused (a 422 answer, or "valid": false
from validate); 1 any other failure (agent unreachable, 400, 401, 409, 5xx...).

Where the agent is: --config agent.toml (uses its listen address and pos_token), or
--url and --token. The token may also come from TILLKEEP_POS_TOKEN. Without either,
the agent's default address http://127.0.0.1:7070 is used.`,
		Args: cobra.NoArgs,
	}
	conn.register(cmd)
	cmd.AddCommand(
		newPosStatusCmd(conn),
		newPosValidateCmd(conn),
		newPosRedeemCmd(conn),
		newPosReverseCmd(conn),
	)
	return cmd
}

// posConnection is how the pos commands reach the agent.
type posConnection struct {
	configPath string
	url        string
	token      string
	timeout    time.Duration
}

func (c *posConnection) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.configPath, "config", "", "agent.toml to read listen and pos_token from")
	f.StringVar(&c.url, "url", "", "base URL of the agent (default from --config, else http://"+config.DefaultAgentListen+")")
	f.StringVar(&c.token, "token", "", "POS bearer token (default from --config, else $"+posTokenEnv+")")
	f.DurationVar(&c.timeout, "timeout", 10*time.Second, "give up on an answer after this long")
	_ = cmd.MarkPersistentFlagFilename("config", "toml")
}

// resolve works out the base URL and token: flags first, then agent.toml, then the
// environment, then the agent's default address.
func (c *posConnection) resolve() (base, token string, err error) {
	base, token = c.url, c.token
	if c.configPath != "" {
		cfg, err := config.LoadAgent(c.configPath)
		if err != nil {
			return "", "", withExit(exitBadAgentConfig, err)
		}
		if base == "" {
			base = "http://" + dialableAddr(cfg.Listen)
		}
		if token == "" {
			token = cfg.PosToken
		}
	}
	if token == "" {
		token = os.Getenv(posTokenEnv)
	}
	if base == "" {
		base = "http://" + config.DefaultAgentListen
	}
	if token == "" {
		return "", "", withExit(exitPosFailed, fmt.Errorf("no POS token: pass --token, --config agent.toml, or set %s", posTokenEnv))
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", withExit(exitPosFailed, fmt.Errorf("--url %q is not an http(s) URL", base))
	}
	return strings.TrimRight(base, "/"), token, nil
}

// dialableAddr turns a listen address into one a client can dial: an agent listening
// on every interface is reached on loopback.
func dialableAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// call sends one request, prints the answer and turns it into an exit status.
func (c *posConnection) call(cmd *cobra.Command, method, path string, body any) (map[string]any, error) {
	base, token, err := c.resolve()
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, withExit(exitPosFailed, fmt.Errorf("build request: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, withExit(exitPosFailed, fmt.Errorf("call the agent at %s: %w", base, err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, posMaxAnswerBytes))
	if err != nil {
		return nil, withExit(exitPosFailed, fmt.Errorf("read the agent's answer: %w", err))
	}
	out := cmd.OutOrStdout()
	if len(raw) > 0 {
		_, _ = out.Write(raw)
		if raw[len(raw)-1] != '\n' {
			fmt.Fprintln(out)
		}
	}
	var answer map[string]any
	_ = json.Unmarshal(raw, &answer)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return answer, nil
	}
	code, message := errorOf(answer)
	if code == "" {
		code, message = "http_"+fmt.Sprint(resp.StatusCode), strings.TrimSpace(string(raw))
	}
	failure := fmt.Errorf("the agent answered %d %s: %s", resp.StatusCode, code, message)
	if resp.StatusCode == http.StatusUnprocessableEntity {
		return answer, withExit(exitPosRefused, failure)
	}
	return answer, withExit(exitPosFailed, failure)
}

func errorOf(answer map[string]any) (code, message string) {
	e, _ := answer["error"].(map[string]any)
	code, _ = e["code"].(string)
	message, _ = e["message"].(string)
	return code, message
}

func newPosStatusCmd(conn *posConnection) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the till's mode, catalog and pending uploads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := conn.call(cmd, http.MethodGet, "/v1/status", nil)
			return err
		},
	}
}

// billFlags are the flags of a request that carries a bill.
type billFlags struct {
	code, customer, currency string
	amount                   int64
}

func (b *billFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&b.code, "code", "", "coupon code (required)")
	f.Int64Var(&b.amount, "bill", 0, "bill amount in minor units, e.g. 12000 for 120.00 (required)")
	f.StringVar(&b.currency, "currency", "", "bill currency, ISO 4217, e.g. USD (required)")
	f.StringVar(&b.customer, "customer", "", "loyalty customer id, if known")
	for _, name := range []string{"code", "bill", "currency"} {
		_ = cmd.MarkFlagRequired(name)
	}
}

func (b *billFlags) bill() tillkeep.Money {
	return tillkeep.Money{Amount: b.amount, Currency: b.currency}
}

func newPosValidateCmd(conn *posConnection) *cobra.Command {
	var b billFlags
	cmd := &cobra.Command{
		Use:   "validate --code CODE --bill AMOUNT --currency CUR [--customer ID]",
		Short: "Ask whether a coupon would be accepted for a bill (records nothing)",
		Long: `Ask whether a coupon would be accepted for a bill, and with what discount. Nothing
is recorded. Exits 3 when the answer is "valid": false.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			answer, err := conn.call(cmd, http.MethodPost, "/v1/validate", map[string]any{
				"code": b.code, "bill": b.bill(), "customer_id": b.customer,
			})
			if err != nil {
				return err
			}
			if valid, _ := answer["valid"].(bool); !valid {
				reason, _ := answer["reason"].(string)
				return withExit(exitPosRefused, fmt.Errorf("coupon %s is not valid: %s", b.code, reason))
			}
			return nil
		},
	}
	b.register(cmd)
	return cmd
}

func newPosRedeemCmd(conn *posConnection) *cobra.Command {
	var (
		b           billFlags
		transaction string
	)
	cmd := &cobra.Command{
		Use:   "redeem --code CODE --transaction ID --bill AMOUNT --currency CUR [--customer ID]",
		Short: "Redeem a coupon for a POS transaction",
		Long: `Redeem a coupon for a POS transaction. The transaction id is the idempotency key:
running the same command again prints the first answer (same redemption_id); the
same id with another code, bill or customer is refused (409). Exits 3 on a refusal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := conn.call(cmd, http.MethodPost, "/v1/redemptions", map[string]any{
				"code": b.code, "transaction_id": transaction, "bill": b.bill(), "customer_id": b.customer,
			})
			return err
		},
	}
	b.register(cmd)
	cmd.Flags().StringVar(&transaction, "transaction", "", "the POS transaction id, 1 to 128 characters (required)")
	_ = cmd.MarkFlagRequired("transaction")
	return cmd
}

func newPosReverseCmd(conn *posConnection) *cobra.Command {
	return &cobra.Command{
		Use:   "reverse REDEMPTION_ID",
		Short: "Reverse a redemption made at this till",
		Long: `Reverse a redemption made at this till (for example when the sale is voided). Reversing
it again answers the same; a redemption this till did not make is 404 (exit 1).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "" {
				return withExit(exitPosFailed, errors.New("the redemption id is empty"))
			}
			_, err := conn.call(cmd, http.MethodPost, "/v1/redemptions/"+url.PathEscape(args[0])+"/reverse", nil)
			return err
		},
	}
}
