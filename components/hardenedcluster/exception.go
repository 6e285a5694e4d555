package hardenedcluster

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/kplane/kplane/components/hardenedcluster/rules"
)

// DefaultMaxExceptionDays caps an exception's lifetime unless MaxExceptionDays says otherwise.
const DefaultMaxExceptionDays = 90

// Exception excludes a workload from one policy until it expires.
type Exception struct {
	// Policy is the policy name, e.g. "kplane-read-only-root" (see PolicyNames).
	Policy string `json:"policy"`
	// Namespace the exception applies to (required).
	Namespace string `json:"namespace"`
	// Workload is the workload's whole name: "db" covers the Deployment, StatefulSet, DaemonSet,
	// Job or CronJob named db and the objects its controllers name after it (ReplicaSets
	// db-<hash>, pods db-<hash>-<id> and db-0, Jobs db-<time>), not "dbadmin" or "db-admin". A
	// trailing "*" makes it an explicit prefix ("batch-*"). Empty: the whole namespace.
	Workload string `json:"workload,omitempty"`
	// Reason is recorded on the policy for auditors (required).
	Reason string `json:"reason"`
	// Owner is who answers for the exception: a team or a person (required).
	Owner string `json:"owner"`
	// Ticket is the change or risk-acceptance record that approved it (required).
	Ticket string `json:"ticket"`
	// Expires is the last day the exception applies, YYYY-MM-DD, UTC (required; at most
	// MaxExceptionDays ahead).
	Expires string `json:"expires"`
}

// ExceptionConditionName names an exception's match condition on a ValidatingAdmissionPolicy;
// the expiry CronJob reads the date from it.
func ExceptionConditionName(i int, e Exception) string {
	return fmt.Sprintf("exception-%d-expires-%s", i, e.Expires)
}

// workloadPrefix is the part before an exception's "*".
var workloadPrefix = regexp.MustCompile(`^[a-z0-9][-a-z0-9.]{0,250}$`)

// generatedSuffix is what controllers append to a workload's name: a StatefulSet pod's ordinal,
// a CronJob's Job time, or a ReplicaSet's pod-template hash (Kubernetes' safe alphabet).
const generatedSuffix = `([0-9]+|[bcdfghjklmnpqrstvwxz2456789]{5,10})`

// namePatterns are the regular expressions the excepted objects' name or generateName match.
func (e Exception) namePatterns() (name, generateName string) {
	if prefix, ok := strings.CutSuffix(e.Workload, "*"); ok {
		q := regexp.QuoteMeta(prefix)
		return "^" + q, "^" + q
	}
	q := regexp.QuoteMeta(e.Workload)
	return "^" + q + "(-" + generatedSuffix + ")?$", "^" + q + "-(" + generatedSuffix + "-)?$"
}

// exceptionCondition is a CEL match condition that is false for the excepted workload.
func (e Exception) exceptionCondition() string {
	cond := "request.namespace == " + rules.CELString(e.Namespace)
	if e.Workload != "" {
		name, generated := e.namePatterns()
		cond += " && (object.metadata.name.matches(" + rules.CELString(name) + ") || (has(object.metadata.generateName) && object.metadata.generateName.matches(" + rules.CELString(generated) + ")))"
	}
	return "!(" + cond + ")"
}

// activeExceptions splits the exceptions of one policy into those still in force and those
// expired at now (expired ones no longer exclude anything).
func (a *Args) activeExceptions(policy string, now time.Time) (active, expired []Exception) {
	today := now.UTC().Format("2006-01-02")
	for _, e := range a.Admission.Exceptions {
		if e.Policy != policy {
			continue
		}
		if e.Expires < today {
			expired = append(expired, e)
		} else {
			active = append(active, e)
		}
	}
	return active, expired
}

func (ad AdmissionArgs) maxExceptionDays() int {
	if ad.MaxExceptionDays > 0 {
		return ad.MaxExceptionDays
	}
	return DefaultMaxExceptionDays
}

// today is the current UTC date (expiry dates are days in UTC).
func today() time.Time {
	y, m, d := now().UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
