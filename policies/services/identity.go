package services

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/kplane/kplane/components/wellknown"
	"github.com/kplane/kplane/internal/anymap"
	"github.com/kplane/kplane/policies/pack"
)

// realm is one Keycloak realm representation a resource declares.
type realm struct {
	name string
	rep  map[string]any
	err  error
}

// realms finds the realm representations r declares: a ConfigMap labelled wellknown.RealmLabel (key
// realm.json) or the Keycloak operator's KeycloakRealmImport (spec.realm).
func realms(r pack.Resource) []realm {
	name, labels := r.Meta()
	switch {
	case r.Kind("", "ConfigMap") && labels[wellknown.RealmLabel] != nil:
		raw, _ := pack.Get(r.Props, "data", "realm.json").(string)
		if raw == pack.Unknown {
			return nil
		}
		var rep map[string]any
		if err := json.Unmarshal([]byte(raw), &rep); err != nil {
			return []realm{{name: "ConfigMap " + name, err: fmt.Errorf("realm.json is not a realm representation: %w", err)}}
		}
		return []realm{{name: fmt.Sprintf("realm %v (ConfigMap %s)", rep["realm"], name), rep: rep}}
	case r.Kind("k8s.keycloak.org", "KeycloakRealmImport"):
		rep, _ := pack.Get(r.Props, "spec", "realm").(map[string]any)
		return []realm{{name: fmt.Sprintf("realm %v (KeycloakRealmImport %s)", rep["realm"], name), rep: rep}}
	}
	return nil
}

func declaresRealm(r pack.Resource) bool { return len(realms(r)) > 0 }

// realmCheck adapts a check of one realm representation to a resource policy.
func realmCheck(check func(rep map[string]any) []string) func(pack.Resource) []string {
	return func(r pack.Resource) []string {
		var out []string
		for _, rl := range realms(r) {
			if rl.err != nil {
				out = append(out, rl.name+": "+rl.err.Error())
				continue
			}
			for _, msg := range check(rl.rep) {
				out = append(out, rl.name+": "+msg)
			}
		}
		return out
	}
}

// number reads a JSON number or numeric string; ok is false when absent.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

var secondFactors = []string{"auth-otp-form", "webauthn-authenticator", "webauthn-authenticator-passwordless"}

// mfaCoverage walks the realm's browser flow: whether every login needs a second factor, and
// whether logins of users with an admin role do (a conditional subflow on that role).
func mfaCoverage(rep map[string]any) (all, admins bool) {
	flows := map[string]map[string]any{}
	for _, f := range anymap.List(rep["authenticationFlows"]) {
		alias, _ := f["alias"].(string)
		flows[alias] = f
	}
	configs := map[string]map[string]any{}
	for _, c := range anymap.List(rep["authenticatorConfig"]) {
		alias, _ := c["alias"].(string)
		cfg, _ := c["config"].(map[string]any)
		configs[alias] = cfg
	}
	browser, _ := rep["browserFlow"].(string)
	if browser == "" {
		browser = "browser"
	}
	var walk func(alias string, conditional bool, depth int)
	walk = func(alias string, conditional bool, depth int) {
		flow, ok := flows[alias]
		if !ok || depth > 10 {
			return
		}
		execs := anymap.List(flow["authenticationExecutions"])
		adminCondition := false
		for _, e := range execs {
			if e["authenticator"] == "conditional-user-role" && e["requirement"] == "REQUIRED" {
				cfg := configs[fmt.Sprint(e["authenticatorConfig"])]
				role, _ := cfg["condUserRole"].(string)
				if strings.Contains(strings.ToLower(role), "admin") && fmt.Sprint(cfg["negate"]) != "true" {
					adminCondition = true
				}
			}
		}
		for _, e := range execs {
			req, _ := e["requirement"].(string)
			if req == "DISABLED" {
				continue
			}
			if sub, _ := e["flowAlias"].(string); sub != "" {
				walk(sub, conditional || req == "CONDITIONAL", depth+1)
				continue
			}
			if slices.Contains(secondFactors, fmt.Sprint(e["authenticator"])) && req == "REQUIRED" {
				if !conditional {
					all = true
				} else if adminCondition {
					admins = true
				}
			}
		}
	}
	walk(browser, false, 0)
	if !all {
		// Every user must enrol a second factor (a default required action), and Keycloak's
		// built-in browser flow then asks for it (or the realm's own flow has one).
		for _, a := range anymap.List(rep["requiredActions"]) {
			alias, _ := a["alias"].(string)
			if (alias == "CONFIGURE_TOTP" || alias == "webauthn-register") && a["enabled"] == true && a["defaultAction"] == true {
				_, custom := flows[browser]
				all = !custom || flowHasSecondFactor(flows, browser)
			}
		}
	}
	return all, admins || all
}

func flowHasSecondFactor(flows map[string]map[string]any, alias string) bool {
	for _, e := range anymap.List(flows[alias]["authenticationExecutions"]) {
		if e["requirement"] == "DISABLED" {
			continue
		}
		if sub, _ := e["flowAlias"].(string); sub != "" && sub != alias && flowHasSecondFactor(flows, sub) {
			return true
		}
		if slices.Contains(secondFactors, fmt.Sprint(e["authenticator"])) {
			return true
		}
	}
	return false
}

var passwordRule = regexp.MustCompile(`(\w+)(?:\(([^)]*)\))?`)

// passwordPolicy parses Keycloak's passwordPolicy ("length(12) and digits(1) and ...").
func passwordPolicy(s string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(s, " and ") {
		if m := passwordRule.FindStringSubmatch(strings.TrimSpace(part)); m != nil {
			out[m[1]] = m[2]
		}
	}
	return out
}

// Token and session limits (seconds) kplane holds realms to.
const (
	MaxAccessTokenLifespan = 900   // 15 min (Keycloak's default is 5 min)
	MaxSessionIdle         = 1800  // 30 min, ISMS-P's idle-session practice
	MaxSessionLifespan     = 43200 // 12 h
	MaxLoginFailures       = 10    // KISA: lock after at most 10 failures
	MinPasswordLength      = 8     // KISA/ISMS-P: 8 with three character classes, 10 with two
)

// IdentityPolicies check the Keycloak realms a stack declares: administrators log in with a
// second factor, passwords follow the KISA/ISMS-P rule, repeated failures lock the account, and
// tokens and sessions are short-lived.
func IdentityPolicies() []pack.Policy {
	controls := func(extra ...pack.Control) []pack.Control {
		return append([]pack.Control{{Framework: "ISMS-P", ID: "2.5.3"}}, extra...)
	}
	return []pack.Policy{
		{Name: "kplane-keycloak-admin-mfa", Enforcement: pack.Mandatory,
			Description: "administrators of a Keycloak realm log in with a second factor (OTP or WebAuthn)", DescriptionKo: "Keycloak 렐름의 관리자는 2차 인증(OTP 또는 WebAuthn)으로 로그인해야 합니다",
			Remediation: "make the realm's browser flow require OTP/WebAuthn for users with the admin role (a CONDITIONAL subflow with conditional-user-role), or for everyone; the identity realm component does", RemediationKo: "렐름의 브라우저 플로에서 관리자 역할 사용자(conditional-user-role 조건부 하위 플로) 또는 모든 사용자에게 OTP/WebAuthn을 필수로 지정하십시오",
			Controls: controls(pack.Control{Framework: "KISA", ID: "CA-03"}, pack.Control{Framework: "ISMS-P", ID: "2.5.5"}),
			Applies:  declaresRealm, Subjects: "Keycloak realms (kplane:identity)", SubjectsKo: "Keycloak 렐름(kplane:identity)", Check: realmCheck(func(rep map[string]any) []string {
				if _, admins := mfaCoverage(rep); !admins {
					return []string{"administrators can log in without a second factor (the browser flow requires no OTP/WebAuthn for admin roles)"}
				}
				return nil
			})},
		{Name: "kplane-keycloak-password-policy", Enforcement: pack.Mandatory,
			Description: fmt.Sprintf("a Keycloak realm's password policy asks for at least %d characters of three kinds (or 10 of two), not the username, not the last passwords", MinPasswordLength), DescriptionKo: fmt.Sprintf("Keycloak 렐름의 비밀번호 정책은 3종류 문자 조합 %d자 이상(2종류는 10자 이상), 사용자명 금지, 최근 비밀번호 재사용 금지를 요구해야 합니다", MinPasswordLength),
			Remediation: `set passwordPolicy, e.g. "length(12) and upperCase(1) and lowerCase(1) and digits(1) and specialChars(1) and notUsername and passwordHistory(3)"`, RemediationKo: `passwordPolicy를 예: "length(12) and upperCase(1) and lowerCase(1) and digits(1) and specialChars(1) and notUsername and passwordHistory(3)"로 설정하십시오`,
			Controls: controls(pack.Control{Framework: "KISA", ID: "CA-04"}, pack.Control{Framework: "ISMS-P", ID: "2.5.4"}),
			Applies:  declaresRealm, Subjects: "Keycloak realms (kplane:identity)", SubjectsKo: "Keycloak 렐름(kplane:identity)", Check: realmCheck(func(rep map[string]any) []string {
				raw, _ := rep["passwordPolicy"].(string)
				p := passwordPolicy(raw)
				length, _ := strconv.Atoi(p["length"])
				kinds := 0
				for _, k := range []string{"upperCase", "lowerCase", "digits", "specialChars"} {
					if _, ok := p[k]; ok {
						kinds++
					}
				}
				var out []string
				if length < MinPasswordLength || (kinds < 3 && (kinds < 2 || length < 10)) {
					out = append(out, fmt.Sprintf("passwordPolicy %q: needs length(>=%d) with three character kinds, or length(>=10) with two", raw, MinPasswordLength))
				}
				if _, ok := p["notUsername"]; !ok {
					out = append(out, "passwordPolicy lacks notUsername")
				}
				if n, _ := strconv.Atoi(p["passwordHistory"]); n < 1 {
					out = append(out, "passwordPolicy lacks passwordHistory")
				}
				return out
			})},
		{Name: "kplane-keycloak-brute-force", Enforcement: pack.Mandatory,
			Description: fmt.Sprintf("a Keycloak realm locks an account after at most %d failed logins (brute-force detection)", MaxLoginFailures), DescriptionKo: fmt.Sprintf("Keycloak 렐름은 로그인 %d회 이하 실패 시 계정을 잠가야 합니다(무차별 대입 탐지)", MaxLoginFailures),
			Remediation: fmt.Sprintf("set bruteForceProtected true and failureFactor <= %d", MaxLoginFailures), RemediationKo: fmt.Sprintf("bruteForceProtected를 true로, failureFactor를 %d 이하로 설정하십시오", MaxLoginFailures),
			Controls: controls(pack.Control{Framework: "KISA", ID: "CA-02"}),
			Applies:  declaresRealm, Subjects: "Keycloak realms (kplane:identity)", SubjectsKo: "Keycloak 렐름(kplane:identity)", Check: realmCheck(func(rep map[string]any) []string {
				if rep["bruteForceProtected"] != true {
					return []string{"bruteForceProtected is not true"}
				}
				if n, ok := number(rep["failureFactor"]); !ok || n < 1 || n > MaxLoginFailures {
					return []string{fmt.Sprintf("failureFactor %v: lock after 1..%d failures (Keycloak's default is 30)", rep["failureFactor"], MaxLoginFailures)}
				}
				return nil
			})},
		{Name: "kplane-keycloak-token-lifetimes", Enforcement: pack.Mandatory,
			Description: fmt.Sprintf("a Keycloak realm's access tokens live at most %d s, idle sessions end after %d s and sessions after %d s", MaxAccessTokenLifespan, MaxSessionIdle, MaxSessionLifespan), DescriptionKo: fmt.Sprintf("Keycloak 렐름의 액세스 토큰은 최대 %d초, 유휴 세션은 %d초, 세션은 %d초 이내에 만료되어야 합니다", MaxAccessTokenLifespan, MaxSessionIdle, MaxSessionLifespan),
			Remediation: "lower accessTokenLifespan, ssoSessionIdleTimeout and ssoSessionMaxLifespan (unset means Keycloak's defaults: 300, 1800, 36000)", RemediationKo: "accessTokenLifespan, ssoSessionIdleTimeout, ssoSessionMaxLifespan 값을 낮추십시오(미설정 시 기본값 300, 1800, 36000)",
			Controls: controls(pack.Control{Framework: "ISMS-P", ID: "2.6.2"}),
			Applies:  declaresRealm, Subjects: "Keycloak realms (kplane:identity)", SubjectsKo: "Keycloak 렐름(kplane:identity)", Check: realmCheck(func(rep map[string]any) []string {
				var out []string
				for _, lim := range []struct {
					field string
					max   float64
				}{{"accessTokenLifespan", MaxAccessTokenLifespan}, {"ssoSessionIdleTimeout", MaxSessionIdle}, {"ssoSessionMaxLifespan", MaxSessionLifespan}} {
					if n, ok := number(rep[lim.field]); ok && (n <= 0 || n > lim.max) {
						out = append(out, fmt.Sprintf("%s %v s: at most %v s", lim.field, rep[lim.field], lim.max))
					}
				}
				return out
			})},
	}
}
