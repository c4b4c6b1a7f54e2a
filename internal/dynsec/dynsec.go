// Package dynsec mirrors carehub's device credentials into an external
// Mosquitto through its dynamic-security plugin, so that a device
// registered through the API can log in to that broker with the password it
// was issued, publish only under its own topic prefix (contract §1), and is
// refused once disabled, without anyone editing a password file.
//
// carehub keeps only a slow hash of a device's password, and the plugin's
// control API takes the password itself, so credentials reach the broker
// when they are issued (registration, rotation); a device registered before
// mirroring was turned on gets its broker account at its next rotation.
//
// Mosquitto 2.0's plugin has no %u patterns in its ACLs: every device gets
// a role of its own with its literal topics.
package dynsec

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/carehub/carehub/devices"
	"github.com/carehub/carehub/internal/model"
	"github.com/carehub/carehub/internal/redact"
)

const (
	controlTopic  = "$CONTROL/dynamic-security/v1"
	responseTopic = "$CONTROL/dynamic-security/v1/response"

	// ServiceRole is the role carehub gives its own broker user: read every
	// device's topics through the shared subscription, write their config.
	ServiceRole = "carehub-service"
	// deviceRolePrefix + a device id names the device's own role.
	deviceRolePrefix = "carehub-device-"
	// DeviceMark is the textname carehub gives every device account and
	// device role it creates. An account or role of a device's name without
	// it was made by someone else (an operator, another system, carehub's
	// own users): carehub never adopts, changes or deletes it.
	DeviceMark = "carehub device"
	// serviceMark is the textname of the service user carehub creates
	// when it is missing.
	serviceMark = "carehub ingest"
)

// The plugin's answers that mean "already as wanted" for the commands that
// make things exist or go.
const (
	errClientExists = "Client already exists"
	errRoleExists   = "Role already exists"
	errClientAbsent = "Client not found"
	errRoleAbsent   = "Role not found"
)

// reconnectInterval is the longest wait between attempts to reach a broker
// that went away (paho's default is 10 minutes).
const reconnectInterval = 10 * time.Second

// Options configures the control connection.
type Options struct {
	BrokerURL string
	// Username and Password are the control login: a user with the
	// plugin's admin role, kept apart from the ingest login so that the
	// credentials every carehub connection carries cannot rewrite the
	// broker's accounts.
	Username string
	Password string
	ClientID string
	// ServiceUser and ServicePassword are carehub's ingest login: it gets
	// the service role. Created with this password when the broker does
	// not have it; an existing user keeps its password.
	ServiceUser     string
	ServicePassword string
	// ShareGroup is carehub's shared-subscription group ($share/{group}/...).
	ShareGroup string
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// TLS is the client configuration for ssl:// and tls:// brokers
	// (CARE_TLS_CA_FILE); nil = the system's CAs.
	TLS *tls.Config
	Log zerolog.Logger
	// OnReconnect, when set, runs (on a goroutine of its own) each time
	// the client is connected again after losing the broker, once it
	// reads the plugin's answers: what the broker missed meanwhile can be
	// sent again.
	OnReconnect func(*Client)
}

// Client sends the plugin's commands and waits for their answers.
type Client struct {
	o     Options
	c     mqtt.Client
	nonce string // this client's part of every correlation id
	seq   atomic.Uint64
	// connects counts connections: the first is Dial's.
	connects atomic.Uint64

	mu      sync.Mutex
	waiting map[string]chan []answer
}

type answer struct {
	Command         string          `json:"command"`
	Error           string          `json:"error"`
	CorrelationData string          `json:"correlationData"`
	Data            json.RawMessage `json:"data"`
}

// command is one entry of a request's "commands" array.
type command map[string]any

// Dial connects the control client and subscribes to the plugin's answers.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	nonce := make([]byte, 8)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	if o.ServiceUser == "" {
		return nil, errors.New("dynsec: ServiceUser (carehub's ingest login) is required")
	}
	if o.ServiceUser == o.Username {
		return nil, fmt.Errorf("dynsec: the control login %q must not be the ingest login: give each its own user", o.Username)
	}
	cl := &Client{o: o, nonce: hex.EncodeToString(nonce), waiting: map[string]chan []answer{}}
	opts := mqtt.NewClientOptions().AddBroker(o.BrokerURL).SetClientID(o.ClientID).
		SetUsername(o.Username).SetPassword(o.Password).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(false).
		// Back within seconds of the broker: OnReconnect's catching up
		// waits for it.
		SetMaxReconnectInterval(reconnectInterval).
		SetConnectTimeout(o.Timeout).SetOrderMatters(false)
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS.Clone())
	}
	// Subscribing again on every reconnect: a clean session forgets it.
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		if tok := c.Subscribe(responseTopic, 1, cl.onAnswer); tok.WaitTimeout(o.Timeout) && tok.Error() != nil {
			o.Log.Error().Err(tok.Error()).Msg("dynsec: subscribing to the plugin's answers failed")
		}
		if cl.connects.Add(1) > 1 && o.OnReconnect != nil {
			go o.OnReconnect(cl)
		}
	})
	cl.c = mqtt.NewClient(opts)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(o.Timeout) {
		return nil, errors.New("dynsec: connecting to the broker timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("dynsec: connecting to the broker as %q: %w", o.Username, err)
	}
	// The connect handler subscribes after Connect returns; a request sent
	// before that would miss its answer, so subscribe here and wait.
	if tok := cl.c.Subscribe(responseTopic, 1, cl.onAnswer); !tok.WaitTimeout(o.Timeout) || tok.Error() != nil {
		cl.Close()
		return nil, fmt.Errorf("dynsec: subscribing to %s as %q: %v", responseTopic, o.Username, tok.Error())
	}
	// A harmless command: is the plugin there, and may this user use it?
	if _, err := cl.do(ctx, command{"command": "getDefaultACLAccess"}); err != nil {
		cl.Close()
		return nil, fmt.Errorf("dynsec: the broker's dynamic-security plugin does not answer %q (is the plugin loaded, and does the user have its admin role?): %w", o.Username, err)
	}
	return cl, nil
}

// Close disconnects.
func (cl *Client) Close() { cl.c.Disconnect(250) }

func (cl *Client) onAnswer(_ mqtt.Client, m mqtt.Message) {
	var body struct {
		Responses []answer `json:"responses"`
	}
	if err := json.Unmarshal(m.Payload(), &body); err != nil || len(body.Responses) == 0 {
		return
	}
	// "{nonce}-{request}.{index}": the nonce and the request hold no dot.
	id, _, _ := strings.Cut(body.Responses[0].CorrelationData, ".")
	cl.mu.Lock()
	ch := cl.waiting[id]
	delete(cl.waiting, id)
	cl.mu.Unlock()
	if ch != nil {
		ch <- body.Responses
	}
}

// do sends cmds in one request and returns the plugin's error text for each
// ("" = done), in order, or an error when no answer came.
func (cl *Client) do(ctx context.Context, cmds ...command) ([]string, error) {
	answers, err := cl.request(ctx, cmds...)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(cmds))
	for i, a := range answers {
		out[i] = a.Error
	}
	return out, nil
}

// request sends cmds in one request and returns the answer to each, in
// order, or an error when no answer came.
func (cl *Client) request(ctx context.Context, cmds ...command) ([]answer, error) {
	// Every instance of carehub, and the operator's mosquitto_ctrl, reads
	// the same answer topic: the nonce keeps the ids apart.
	id := cl.nonce + "-" + strconv.FormatUint(cl.seq.Add(1), 10)
	for i, c := range cmds {
		c["correlationData"] = id + "." + strconv.Itoa(i)
	}
	payload, err := json.Marshal(map[string]any{"commands": cmds})
	if err != nil {
		return nil, err
	}
	ch := make(chan []answer, 1)
	cl.mu.Lock()
	cl.waiting[id] = ch
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		delete(cl.waiting, id)
		cl.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, cl.o.Timeout)
	defer cancel()
	tok := cl.c.Publish(controlTopic, 1, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return nil, fmt.Errorf("dynsec: sending %s: %w", cmds[0]["command"], err)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("dynsec: sending %s: %w", cmds[0]["command"], ctx.Err())
	}
	select {
	case answers := <-ch:
		out := make([]answer, len(cmds))
		for _, a := range answers {
			index, ok := strings.CutPrefix(a.CorrelationData, id+".")
			if i, err := strconv.Atoi(index); ok && err == nil && i >= 0 && i < len(out) {
				out[i] = a
			}
		}
		return out, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("dynsec: no answer to %s: %w", cmds[0]["command"], ctx.Err())
	}
}

// check turns the answers into an error, ignoring the ones in ok.
func check(cmds []command, errs []string, ok ...string) error {
	var out []error
	for i, e := range errs {
		if e == "" || slices.Contains(ok, e) {
			continue
		}
		out = append(out, fmt.Errorf("dynsec %s: %s", cmds[i]["command"], e))
	}
	return errors.Join(out...)
}

func acl(typ, topic string) map[string]any {
	return map[string]any{"acltype": typ, "topic": topic, "allow": true}
}

// EnsureService creates carehub's service role and gives it to carehub's
// own user: subscribe to every device's topics, directly and through the
// shared subscription, receive them, and publish their config. A role that
// exists has its ACLs brought to these (another share group, an older
// carehub's).
//
// The plugin disconnects every connection of a user whose roles change,
// and of every client holding a role whose ACLs change, this control
// connection among them, so the answer may be lost: carehub asks once,
// then reads the state again once reconnected, until it shows.
func (cl *Client) EnsureService(ctx context.Context) error {
	share := "$share/" + cl.o.ShareGroup + "/" + model.TopicPrefix
	acls := []map[string]any{
		acl("subscribePattern", share+"+/"+model.TopicTelemetry),
		acl("subscribePattern", share+"+/"+model.TopicEvent),
		acl("subscribePattern", share+"+/"+model.TopicStatus),
		acl("subscribePattern", model.TopicPrefix+"#"),
		acl("publishClientReceive", model.TopicPrefix+"#"),
		acl("publishClientSend", model.TopicPrefix+"+/"+model.TopicConfig),
	}
	role := command{"command": "createRole", "rolename": ServiceRole, "textname": "carehub ingest", "acls": acls}
	errs, err := cl.do(ctx, role)
	if err != nil {
		return err
	}
	if err := check([]command{role}, errs, errRoleExists); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*cl.o.Timeout)
	defer cancel()
	if errs[0] == errRoleExists {
		if err := cl.until(ctx, "mending the ACLs of role "+ServiceRole, func() ([]command, bool, error) {
			fix, err := cl.roleFixes(ctx, ServiceRole, acls)
			return fix, len(fix) == 0, err
		}); err != nil {
			return err
		}
	}
	user := command{"command": "createClient", "username": cl.o.ServiceUser, "password": cl.o.ServicePassword,
		"textname": serviceMark, "roles": []map[string]any{{"rolename": ServiceRole}}}
	if errs, err = cl.do(ctx, user); err != nil {
		return err
	}
	if err := check([]command{user}, errs, errClientExists); err != nil {
		return err
	}
	add := command{"command": "addClientRole", "username": cl.o.ServiceUser, "rolename": ServiceRole}
	return cl.until(ctx, fmt.Sprintf("giving %q the role %s", cl.o.ServiceUser, ServiceRole), func() ([]command, bool, error) {
		has, err := cl.hasRole(ctx, cl.o.ServiceUser, ServiceRole)
		return []command{add}, has, err
	})
}

// until reads the broker's state with get until it says done. The first
// time it is not done, it sends the commands get returned, waiting for
// their answer only briefly: a change to this user's roles or ACLs
// disconnects this connection and loses the answer, or paho sends the
// request again after reconnecting and the copy is refused ("Internal
// error", "ACL with this topic already exists"). A refusal that says the
// user is unknown ends it at once.
func (cl *Client) until(ctx context.Context, what string, get func() (fix []command, done bool, err error)) error {
	for asked := false; ; asked = true {
		fix, done, err := get()
		switch {
		case err == nil && done:
			return nil
		case err == nil && !asked:
			actx, acancel := context.WithTimeout(ctx, time.Second)
			errs, err := cl.do(actx, fix...)
			acancel()
			if err == nil && slices.Contains(errs, errClientAbsent) {
				return check(fix, errs)
			}
		case ctx.Err() != nil:
			return fmt.Errorf("dynsec: %s: %w", what, ctx.Err())
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // reconnecting
		}
	}
}

// get sends one get command and decodes its answer's data into v.
func (cl *Client) get(ctx context.Context, c command, v any) error {
	answers, err := cl.request(ctx, c)
	if err != nil {
		return err
	}
	if answers[0].Error != "" {
		return fmt.Errorf("dynsec %s: %s", c["command"], answers[0].Error)
	}
	if err := json.Unmarshal(answers[0].Data, v); err != nil {
		return fmt.Errorf("dynsec %s: %w", c["command"], err)
	}
	return nil
}

// roleFixes returns the commands that make role's ACLs exactly want (each
// allowed): the stale ones removed, the missing ones added.
func (cl *Client) roleFixes(ctx context.Context, role string, want []map[string]any) ([]command, error) {
	var data struct {
		Role struct {
			ACLs []struct {
				Type  string `json:"acltype"`
				Topic string `json:"topic"`
				Allow bool   `json:"allow"`
			} `json:"acls"`
		} `json:"role"`
	}
	if err := cl.get(ctx, command{"command": "getRole", "rolename": role}, &data); err != nil {
		return nil, err
	}
	type key struct{ typ, topic string }
	wanted := map[key]bool{}
	for _, a := range want {
		wanted[key{a["acltype"].(string), a["topic"].(string)}] = true
	}
	var fix []command
	for _, a := range data.Role.ACLs {
		k := key{a.Type, a.Topic}
		if wanted[k] && a.Allow {
			delete(wanted, k) // there as wanted
			continue
		}
		fix = append(fix, command{"command": "removeRoleACL", "rolename": role, "acltype": a.Type, "topic": a.Topic})
	}
	for _, a := range want { // in want's order, for a stable request
		if wanted[key{a["acltype"].(string), a["topic"].(string)}] {
			fix = append(fix, command{"command": "addRoleACL", "rolename": role, "acltype": a["acltype"], "topic": a["topic"], "allow": true})
		}
	}
	return fix, nil
}

// clientInfo is what getClient tells about a user.
type clientInfo struct {
	Textname string
	Roles    []string
}

// getClient reads a user's textname and roles; ok is false when the broker
// has no such user.
func (cl *Client) getClient(ctx context.Context, user string) (info clientInfo, ok bool, err error) {
	var data struct {
		Client struct {
			Textname string `json:"textname"`
			Roles    []struct {
				Rolename string `json:"rolename"`
			} `json:"roles"`
		} `json:"client"`
	}
	err = cl.get(ctx, command{"command": "getClient", "username": user}, &data)
	if err != nil {
		if strings.HasSuffix(err.Error(), errClientAbsent) {
			return clientInfo{}, false, nil
		}
		return clientInfo{}, false, err
	}
	info.Textname = data.Client.Textname
	for _, r := range data.Client.Roles {
		info.Roles = append(info.Roles, r.Rolename)
	}
	return info, true, nil
}

// hasRole reports whether the plugin's client user holds role.
func (cl *Client) hasRole(ctx context.Context, user, role string) (bool, error) {
	info, _, err := cl.existingClient(ctx, user)
	if err != nil {
		return false, err
	}
	return slices.Contains(info.Roles, role), nil
}

// existingClient is getClient that treats an absent user as an error.
func (cl *Client) existingClient(ctx context.Context, user string) (clientInfo, bool, error) {
	info, ok, err := cl.getClient(ctx, user)
	if err == nil && !ok {
		err = fmt.Errorf("dynsec getClient: %s", errClientAbsent)
	}
	return info, ok, err
}

// foreign is the error for an account or role of a device's name that
// carehub did not create.
func foreign(what, name string) error {
	return fmt.Errorf("%w (%s %q has no %q mark)", devices.ErrAccountTaken, what, name, DeviceMark)
}

// ownDevice reports whether the broker has a device account for id, and
// fails with devices.ErrAccountTaken when it has one carehub did not make.
func (cl *Client) ownDevice(ctx context.Context, id string) (exists bool, err error) {
	info, ok, err := cl.getClient(ctx, id)
	if err != nil || !ok {
		return false, err
	}
	if info.Textname != DeviceMark {
		return true, foreign("client", id)
	}
	return true, nil
}

// deviceRole is the device's own role: publish its telemetry, events and
// status (its Last Will is its status), subscribe to its config.
func deviceRole(id string) command {
	p := model.TopicPrefix + id + "/"
	return command{"command": "createRole", "rolename": deviceRolePrefix + id, "textname": DeviceMark, "acls": []map[string]any{
		acl("publishClientSend", p+model.TopicTelemetry),
		acl("publishClientSend", p+model.TopicEvent),
		acl("publishClientSend", p+model.TopicStatus),
		acl("subscribeLiteral", p+model.TopicConfig),
		acl("publishClientReceive", p+model.TopicConfig),
	}}
}

// CreateDevice gives a device its broker account: client id = username =
// device id, the password it was issued, and its role, both marked as
// carehub's (DeviceMark). An account left from an earlier attempt is
// brought to the same state; an account or role of that name that carehub
// did not create is left alone and the answer is devices.ErrAccountTaken.
func (cl *Client) CreateDevice(ctx context.Context, id, password string) error {
	role := deviceRole(id)
	errs, err := cl.do(ctx, role)
	if err != nil {
		return err
	}
	if err := check([]command{role}, errs, errRoleExists); err != nil {
		return err
	}
	if errs[0] == errRoleExists {
		var data struct {
			Role struct {
				Textname string `json:"textname"`
			} `json:"role"`
		}
		if err := cl.get(ctx, command{"command": "getRole", "rolename": deviceRolePrefix + id}, &data); err != nil {
			return err
		}
		if data.Role.Textname != DeviceMark {
			return foreign("role", deviceRolePrefix+id)
		}
	}
	create := command{"command": "createClient", "username": id, "clientid": id, "password": password, "textname": DeviceMark,
		"roles": []map[string]any{{"rolename": deviceRolePrefix + id}}}
	if errs, err = cl.do(ctx, create); err != nil {
		return err
	}
	if errs[0] != errClientExists {
		return check([]command{create}, errs)
	}
	info, _, err := cl.existingClient(ctx, id)
	if err != nil {
		return err
	}
	if info.Textname != DeviceMark {
		return foreign("client", id)
	}
	cmds := []command{
		{"command": "setClientPassword", "username": id, "password": password},
		{"command": "setClientId", "username": id, "clientid": id},
		{"command": "enableClient", "username": id},
	}
	if !slices.Contains(info.Roles, deviceRolePrefix+id) {
		cmds = append(cmds, command{"command": "addClientRole", "username": id, "rolename": deviceRolePrefix + id})
	}
	if errs, err = cl.do(ctx, cmds...); err != nil {
		return err
	}
	return check(cmds, errs)
}

// SetDevicePassword changes a device's password; a device without an
// account (registered before mirroring) gets one. An account carehub did
// not create is not touched (devices.ErrAccountTaken).
func (cl *Client) SetDevicePassword(ctx context.Context, id, password string) error {
	exists, err := cl.ownDevice(ctx, id)
	if err != nil {
		return err
	}
	if !exists {
		return cl.CreateDevice(ctx, id, password)
	}
	cmds := []command{{"command": "setClientPassword", "username": id, "password": password}}
	errs, err := cl.do(ctx, cmds...)
	if err != nil {
		return err
	}
	return check(cmds, errs)
}

// SetDeviceEnabled lets a device log in, or not; disabling also
// disconnects it. A device without an account has nothing to change; an
// account carehub did not create is not touched (devices.ErrAccountTaken).
func (cl *Client) SetDeviceEnabled(ctx context.Context, id string, enabled bool) error {
	exists, err := cl.ownDevice(ctx, id)
	if err != nil || !exists {
		return err
	}
	verb := "disableClient"
	if enabled {
		verb = "enableClient"
	}
	cmds := []command{{"command": verb, "username": id}}
	errs, err := cl.do(ctx, cmds...)
	if err != nil {
		return err
	}
	return check(cmds, errs, errClientAbsent)
}

// DeleteDevice removes a device's account and role. An account of that
// name carehub did not create is someone else's: it stays, and so does the
// role, and the erasure of the device is not held up by it.
func (cl *Client) DeleteDevice(ctx context.Context, id string) error {
	if _, err := cl.ownDevice(ctx, id); err != nil {
		if errors.Is(err, devices.ErrAccountTaken) {
			cl.o.Log.Warn().Str("device_id", id).Msg("dynsec: the broker account of this device's name was not created by carehub; left in place")
			return nil
		}
		return err
	}
	cmds := []command{{"command": "deleteClient", "username": id}, {"command": "deleteRole", "rolename": deviceRolePrefix + id}}
	errs, err := cl.do(ctx, cmds...)
	if err != nil {
		return err
	}
	return check(cmds, errs, errClientAbsent, errRoleAbsent)
}

// Brokers mirrors device credentials into several brokers, each through
// its own client: a device may connect to any of them. Each change goes to
// all of them at once and fails if one did not take it, as with one
// broker, so the caller repeats it (devices.ErrBroker); a registration
// that one broker refused is undone at the others, so that the device is
// either registered everywhere or nowhere.
type Brokers []*Client

// each runs f on every broker at once and joins the errors.
func (bs Brokers) each(f func(cl *Client) error) []error {
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, cl := range bs {
		wg.Go(func() {
			if err := f(cl); err != nil && len(bs) > 1 {
				errs[i] = fmt.Errorf("broker %s: %w", redact.URL(cl.o.BrokerURL), err)
			} else {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return errs
}

// CreateDevice creates the device's account at every broker.
func (bs Brokers) CreateDevice(ctx context.Context, id, password string) error {
	errs := bs.each(func(cl *Client) error { return cl.CreateDevice(ctx, id, password) })
	if err := errors.Join(errs...); err != nil {
		for i, cl := range bs {
			if errs[i] == nil {
				if derr := cl.DeleteDevice(ctx, id); derr != nil {
					cl.o.Log.Warn().Err(derr).Str("device_id", id).Msg("dynsec: a device another broker refused was not deleted again; it is deleted when the id is erased")
				}
			}
		}
		return err
	}
	return nil
}

// SetDevicePassword changes the device's password at every broker; one
// that failed keeps the old one until the caller rotates again.
func (bs Brokers) SetDevicePassword(ctx context.Context, id, password string) error {
	return errors.Join(bs.each(func(cl *Client) error { return cl.SetDevicePassword(ctx, id, password) })...)
}

// SetDeviceEnabled enables or disables the device at every broker.
func (bs Brokers) SetDeviceEnabled(ctx context.Context, id string, enabled bool) error {
	return errors.Join(bs.each(func(cl *Client) error { return cl.SetDeviceEnabled(ctx, id, enabled) })...)
}

// DeleteDevice deletes the device's account at every broker.
func (bs Brokers) DeleteDevice(ctx context.Context, id string) error {
	return errors.Join(bs.each(func(cl *Client) error { return cl.DeleteDevice(ctx, id) })...)
}

// Close closes every client.
func (bs Brokers) Close() {
	for _, cl := range bs {
		cl.Close()
	}
}

var _ devices.BrokerAccounts = Brokers(nil)
