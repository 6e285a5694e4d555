// Package controls is kplane's control catalog as data: the CIS Kubernetes Benchmark 1.12
// controls, the KISA cloud guide's Kubernetes and cloud items with kplane's crosswalk to CIS, and
// the ISMS-P controls kplane cites. Policies, admission rules and node checks refer to these ids;
// Resolve tells whether a reference exists.
package controls

import (
	_ "embed"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed cis-1.12.yaml
var cisYAML []byte

//go:embed kisa.yaml
var kisaYAML []byte

//go:embed isms-p.yaml
var ismsYAML []byte

// CISControl is one benchmark control.
type CISControl struct {
	ID         string `yaml:"id"`
	Title      string `yaml:"title"`
	Assessment string `yaml:"assessment"` // automated or manual
}

// KISAItem is one KISA check item with its crosswalk to CIS.
type KISAItem struct {
	ID       string   `yaml:"id"`
	Ko       string   `yaml:"ko"`
	En       string   `yaml:"en"`
	CIS      []string `yaml:"cis"`
	Note     string   `yaml:"note"`
	Stricter string   `yaml:"stricter"`
}

// ISMSControl is one ISMS-P control.
type ISMSControl struct {
	ID string `yaml:"id"`
	Ko string `yaml:"ko"`
	En string `yaml:"en"`
}

// Catalog is all of it.
type Catalog struct {
	CIS  []CISControl
	KISA []KISAItem
	ISMS []ISMSControl
}

// Load parses the embedded catalog.
func Load() (*Catalog, error) {
	var cis struct {
		Controls []CISControl `yaml:"controls"`
	}
	var kisa struct {
		Items []KISAItem `yaml:"items"`
	}
	var isms struct {
		Controls []ISMSControl `yaml:"controls"`
	}
	for name, v := range map[string]struct {
		raw []byte
		out any
	}{"cis-1.12.yaml": {cisYAML, &cis}, "kisa.yaml": {kisaYAML, &kisa}, "isms-p.yaml": {ismsYAML, &isms}} {
		if err := yaml.Unmarshal(v.raw, v.out); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	return &Catalog{CIS: cis.Controls, KISA: kisa.Items, ISMS: isms.Controls}, nil
}

// Resolve checks a reference like "CIS 5.2.2", "KISA Master-12", "ISMS-P 2.6.1" or "PSS baseline".
func (c *Catalog) Resolve(ref string) error {
	fw, id, ok := strings.Cut(ref, " ")
	if !ok {
		return fmt.Errorf("control %q: write <framework> <id>, e.g. \"CIS 5.2.2\"", ref)
	}
	switch fw {
	case "CIS":
		for _, x := range c.CIS {
			if x.ID == id {
				return nil
			}
		}
	case "KISA":
		for _, x := range c.KISA {
			if x.ID == id {
				return nil
			}
		}
	case "ISMS-P":
		for _, x := range c.ISMS {
			if x.ID == id || strings.HasPrefix(x.ID, strings.TrimSuffix(id, ".x")+".") && strings.HasSuffix(id, ".x") {
				return nil
			}
		}
	case "PSS":
		if id == "baseline" || id == "restricted" {
			return nil
		}
	default:
		return fmt.Errorf("control %q: unknown framework %q (CIS, KISA, ISMS-P, PSS)", ref, fw)
	}
	return fmt.Errorf("control %q: no such id in the %s catalog (policies/controls)", ref, fw)
}
