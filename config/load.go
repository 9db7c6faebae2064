package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Load reads the YAML file at path (none when path is empty), then the
// KPROXY_* environment variables, over Defaults(). Environment wins over the
// file. Load does not validate: call Validate.
func Load(path string) (Config, error) {
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
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("read config %s: %w", path, err)
		}
	}
	var cfg Config
	err := v.Unmarshal(&cfg, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		stringToClientRulesHook,
		stringToSliceHook,
		stringToMapHook,
	)))
	if err != nil {
		return Config{}, fmt.Errorf("decode config: %w", err)
	}
	cfg.Routing.Groups = completeGroups(cfg.Routing.Groups)
	return cfg, nil
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
			return nil, fmt.Errorf("%s %q: want ORDERING=REGEX entries separated by semicolons", EnvVar("routing.client_rules"), s)
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
