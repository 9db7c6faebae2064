package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Load reads the YAML file at path (none when path is empty), then the
// KPROXY_* environment variables, over Defaults(). Environment wins over the
// file. Load does not validate: call Validate, or Check for both.
//
// Unknown keys in the file, unknown KPROXY_* variables and values that do
// not decode are all reported in one error, each naming its key and
// variable; the returned Config then holds the defaults for the keys that
// did not decode, so that Validate can report the rest.
func Load(path string) (Config, error) {
	cfg, problems, err := load(path)
	if err != nil {
		return Config{}, err
	}
	return cfg, errors.Join(problems...)
}

// Check is Load and Validate: every problem in the file and the
// environment at once. A file that cannot be read or parsed is the only
// problem reported alone.
func Check(path string) (Config, error) {
	cfg, problems, err := load(path)
	if err != nil {
		return Config{}, err
	}
	return cfg, errors.Join(append(problems, cfg.Validate())...)
}

// FileError is a configuration file that cannot be read or parsed: no
// configuration to check.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("read config %s: %v", e.Path, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// load returns a fatal err only when the file cannot be read or parsed.
func load(path string) (cfg Config, problems []error, err error) {
	v := viper.New()
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	defaults := Defaults()
	// The default lane's list is derived, not merged: an API a file moves
	// into another group must leave it.
	delete(defaults.Routing.Groups, DefaultGroupName)
	setDefaults(v, "", reflect.ValueOf(defaults))
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, nil, &FileError{Path: path, Err: err}
		}
		var raw map[string]any
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return Config{}, nil, &FileError{Path: path, Err: err}
		}
		problems = append(problems, unknownFileKeys("", raw, reflect.TypeFor[Config]())...)
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return Config{}, nil, &FileError{Path: path, Err: err}
		}
	}
	cfg = Defaults()
	problems = append(problems, decodeLeaves(v, "", reflect.ValueOf(&cfg).Elem())...)
	cfg.Routing.Groups = completeGroups(cfg.Routing.Groups)
	problems = append(problems, unknownEnv(os.Environ(), cfg)...)
	return cfg, problems, nil
}

// completeGroups fills in what a file or variable leaves out: a group it
// does not name keeps its default list, and the default group lists every
// API no other group names (after any the file put there itself), so that
// the effective configuration shows where each API goes.
func completeGroups(groups map[string][]string) map[string][]string {
	out := make(map[string][]string, len(groups)+len(DefaultGroups()))
	for g, apis := range groups {
		out[g] = apis
	}
	for g, apis := range DefaultGroups() {
		if _, ok := out[g]; !ok && g != DefaultGroupName {
			out[g] = apis
		}
	}
	claimed := map[string]bool{}
	for _, apis := range out {
		for _, api := range apis {
			claimed[strings.ToLower(api)] = true
		}
	}
	rest := append([]string{}, out[DefaultGroupName]...)
	for _, api := range knownAPIs() {
		if !claimed[strings.ToLower(api)] {
			rest = append(rest, api)
		}
	}
	out[DefaultGroupName] = rest
	return out
}

// decodeLeaves decodes every leaf key into its field of val, one at a time,
// so that one bad value neither hides the others nor loses its key. A field
// whose value does not decode keeps its default.
func decodeLeaves(v *viper.Viper, prefix string, val reflect.Value) []error {
	var problems []error
	t := val.Type()
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		f := val.Field(i)
		if f.Kind() == reflect.Struct {
			problems = append(problems, decodeLeaves(v, key, f)...)
			continue
		}
		raw := v.Get(key)
		decoded := reflect.New(f.Type())
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			Result:           decoded.Interface(),
			WeaklyTypedInput: true,
			DecodeHook: mapstructure.ComposeDecodeHookFunc(
				durationHook,
				stringToClientRulesHook,
				stringToSliceHook,
				stringToMapHook,
			),
		})
		if err == nil {
			err = dec.Decode(raw)
		}
		if err != nil {
			problems = append(problems, decodeError(key, f.Type(), raw, err))
			continue
		}
		f.Set(decoded.Elem())
	}
	return problems
}

var durationType = reflect.TypeFor[time.Duration]()

// errBadDuration is what a duration that does not parse gets: the value is
// in the message already, whole.
var errBadDuration = errors.New("want a duration with a unit, e.g. 500ms, 10s, 5m, 1h")

// durationHook parses durations strictly: a bare number is refused rather
// than read as nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType || from == durationType {
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return nil, errBadDuration
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return nil, errBadDuration
	}
	return d, nil
}

// decodeError names the key, its variable and the whole value, and says
// what the key wants.
func decodeError(key string, t reflect.Type, raw any, err error) error {
	value := fmt.Sprint(raw)
	if secretKey(key) {
		value = redacted
	}
	switch {
	case t == durationType:
		err = errBadDuration
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int32 || t.Kind() == reflect.Int64:
		err = errors.New("want a whole number")
	case t.Kind() == reflect.Bool:
		err = errors.New("want true or false")
	default:
		// mapstructure prefixes the (empty) field name: '' …
		var de *mapstructure.DecodeError
		for errors.As(err, &de) && errors.Unwrap(de) != nil {
			err = errors.Unwrap(de)
		}
	}
	return fieldError(key, value, "%v", err)
}

// secretKey reports whether key holds a secret that errors must not echo.
func secretKey(key string) bool {
	return key == "upstream.sasl.password" || strings.HasPrefix(key, "listen.sasl.users")
}

// setDefaults registers every leaf key so that AutomaticEnv sees it: viper
// only consults the environment for keys it knows.
func setDefaults(v *viper.Viper, prefix string, val reflect.Value) {
	t := val.Type()
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		f := val.Field(i)
		if f.Kind() == reflect.Struct {
			setDefaults(v, key, f)
			continue
		}
		v.SetDefault(key, f.Interface())
	}
}

// stringToSliceHook splits comma-separated environment values into lists.
func stringToSliceHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	return splitList(s, ","), nil
}

// stringToMapHook parses map values given as one environment string:
// "1=19101,2=19102" for broker ports, "fetch=Fetch|ShareFetch,produce=Produce"
// for groups (API names separated by |).
func stringToMapHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || from.Kind() != reflect.String || to.Kind() != reflect.Map {
		return data, nil
	}
	out := map[string]any{}
	for _, pair := range splitList(s, ",") {
		k, val, found := strings.Cut(pair, "=")
		if !found {
			return nil, fmt.Errorf("%q: want key=value pairs separated by commas", s)
		}
		k = strings.TrimSpace(k)
		if to.Elem().Kind() == reflect.Slice {
			out[k] = splitList(val, "|")
		} else {
			out[k] = strings.TrimSpace(val)
		}
	}
	return out, nil
}

// stringToClientRulesHook parses routing.client_rules given as one
// environment string: ORDERING=REGEX entries separated by semicolons, e.g.
// "relaxed=^compat-kafkajs$;strict=^legacy-". Only the first "=" splits, so
// the expression may hold "=" and ",".
func stringToClientRulesHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || from.Kind() != reflect.String || to != reflect.TypeFor[[]ClientRule]() {
		return data, nil
	}
	out := []map[string]any{}
	for _, entry := range splitList(s, ";") {
		ordering, re, found := strings.Cut(entry, "=")
		if !found {
			return nil, fmt.Errorf("entry %q: want ORDERING=REGEX entries separated by semicolons", entry)
		}
		out = append(out, map[string]any{"ordering": strings.TrimSpace(ordering), "client_id": strings.TrimSpace(re)})
	}
	return out, nil
}

func splitList(s, sep string) []string {
	out := []string{}
	for _, part := range strings.Split(s, sep) {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", s)
	}
	return p, nil
}
