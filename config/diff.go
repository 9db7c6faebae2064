package config

import (
	"reflect"
)

// Diff lists the keys whose values differ between a and b, in the order of
// the Config struct. Lists and maps are compared whole, under their own key.
func Diff(a, b Config) []string {
	var out []string
	diff("", reflect.ValueOf(a), reflect.ValueOf(b), &out)
	return out
}

func diff(prefix string, a, b reflect.Value, out *[]string) {
	t := a.Type()
	for i := range t.NumField() {
		key := t.Field(i).Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		fa, fb := a.Field(i), b.Field(i)
		if fa.Kind() == reflect.Struct && fa.Type().NumField() > 0 && fa.Type().PkgPath() == t.PkgPath() {
			diff(key, fa, fb, out)
			continue
		}
		if !reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			*out = append(*out, key)
		}
	}
}
