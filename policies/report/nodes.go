package report

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kplane/kplane/components/hardenedcluster"
	"github.com/kplane/kplane/components/hardenedcluster/nodecheck"
	"github.com/kplane/kplane/components/wellknown"
)

// ReadNodeReports reads the node checks' latest reports from a cluster (the ConfigMaps
// kplane-nodecheck files in the hardened cluster's node-check namespace). A cluster without node
// checks has none.
func ReadNodeReports(ctx context.Context, cs kubernetes.Interface) ([]nodecheck.Report, error) {
	cms, err := cs.CoreV1().ConfigMaps(hardenedcluster.NodeCheckNamespace).List(ctx, metav1.ListOptions{LabelSelector: wellknown.NodeCheckLabel + "=" + wellknown.NodeCheckReport})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node check reports: %w", err)
	}
	var out []nodecheck.Report
	for _, cm := range cms.Items {
		var r nodecheck.Report
		if err := json.Unmarshal([]byte(cm.Data["report.json"]), &r); err != nil {
			return nil, fmt.Errorf("node check report %s: %w", cm.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}
