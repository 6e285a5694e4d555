package field

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

type mode string

func TestPathsAndMessages(t *testing.T) {
	p := Root().Child("teams").Index(0).Child("name")
	assert.Equal(t, "teams[0].name", p.String())
	assert.Equal(t, "labels[kplane.io/x]", Root().Child("labels").Key("kplane.io/x").String())
	assert.Equal(t, `teams[0].name "Payments": must be a DNS-1123 label`, Invalid(p, "Payments", "must be a DNS-1123 label").Error())
	assert.Equal(t, "storage.bucket: required; the bucket's name", Required(Root().Child("storage", "bucket"), "the bucket's name").Error())
	assert.Equal(t, `admission.mode "deny": use "enforce" or "audit"`, NotSupported(NewPath("admission", "mode"), mode("deny"), "enforce", "audit").Error())
	assert.Nil(t, Enum(NewPath("mode"), mode(""), "", "enforce"))
	assert.Equal(t, `engine "x": use one of "vap", "gatekeeper", "kyverno", or leave it unset for the default`, Enum(NewPath("engine"), mode("x"), "", "vap", "gatekeeper", "kyverno").Error())
	assert.Equal(t, `teams[0].podSecurity "privileged": refused`, Invalid(NewPath("teams").Index(0).Child("podSecurity"), mode("privileged"), "refused").Error())
	assert.Equal(t, `teams[1].name "web": declared twice`, Duplicate(Root().Child("teams").Index(1).Child("name"), "web").Error())
}

func TestEveryErrorAtOnceUnderTheConfigKey(t *testing.T) {
	var errs ErrorList
	assert.NoError(t, errs.OrNil())
	errs.Add(nil, Required(Root().Child("environment"), "the environment's name"))
	errs.Addf(Root().Child("teams").Index(0), 3, "a team, not %d", 3)
	errs.Merge(Root().Child("admission"), ErrorList{Invalid(Root().Child("mode"), "x", "bad")})
	errs.Merge(Root().Child("chart"), errors.New("plain"))
	err := Under("kplane:security", errs.OrNil())
	assert.Equal(t, "4 errors:\n"+
		"  kplane:security.environment: required; the environment's name\n"+
		"  kplane:security.teams[0] 3: a team, not 3\n"+
		`  kplane:security.admission.mode "x": bad`+"\n"+
		"  kplane:security.chart: plain", err.Error())
	assert.EqualError(t, Under("kplane:fleet", errors.New("x")), "kplane:fleet: x")
	assert.NoError(t, Under("k", nil))
}

func TestDecodeNamesEveryWrongKeyAndTypeAtItsPath(t *testing.T) {
	type schedule struct {
		Name string `json:"name"`
		TTL  string `json:"ttl"`
	}
	type base struct {
		Namespace string `json:"namespace,omitempty"`
	}
	type args struct {
		base
		Schedules []schedule     `json:"schedules"`
		Keep      *int           `json:"keep,omitempty"`
		Values    map[string]any `json:"values,omitempty"`
		Labels    map[string]int `json:"labels,omitempty"`
	}
	var a args
	errs := Decode(NewPath("kplane:backup"), `{"namespace":"velero","schedules":[{"name":"a","ttl":720}],"keep":"x","values":{"any":[1]},"labels":{"x":"y"},"schedule":[]}`, &a)
	assert.Equal(t, []string{
		`kplane:backup.keep "x": expected a number, found a string`,
		`kplane:backup.labels[x] "y": expected a number, found a string`,
		`kplane:backup.schedule: unknown key; known keys: keep, labels, namespace, schedules, values`,
		`kplane:backup.schedules[0].ttl "720": expected a string, found a number`,
	}, messages(errs))
	assert.Empty(t, a.Schedules, "nothing is filled from bad input")

	assert.Empty(t, Decode(NewPath("k"), `{"namespace":"velero","schedules":[{"name":"a","ttl":"1h"}]}`, &a))
	assert.Equal(t, "velero", a.Namespace)
	assert.Equal(t, "1h", a.Schedules[0].TTL)
	assert.Equal(t, []string{`k: not valid YAML/JSON: unexpected end of JSON input`}, messages(Decode(NewPath("k"), `{`, &a)))
}

func messages(l ErrorList) []string {
	var out []string
	for _, e := range l {
		out = append(out, e.Error())
	}
	return out
}
