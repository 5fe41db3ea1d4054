package builder

import (
	"context"
	"fmt"
	"log"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/hashicorp/packer-plugin-sdk/template/config"
	"github.com/hashicorp/packer-plugin-sdk/template/interpolate"
	"github.com/sirupsen/logrus"
)

// BuilderID names the artifacts this builder makes, so post-processors can
// tell them apart from other builders' artifacts.
const BuilderID = "applbuild.image"

// Builder bakes an appliance image under Packer. It runs the same steps as
// `applbuild image`; only the configuration and the log's destination differ.
type Builder struct {
	config Config
	ctx    interpolate.Context
}

var _ packer.Builder = (*Builder)(nil)

// ConfigSpec returns the HCL2 schema of an applbuild-image source.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare decodes the source block and validates it with Config.Prepare.
// The builder exports no generated data, so the first result is nil.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	err := config.Decode(&b.config, &config.DecodeOpts{
		PluginType:         BuilderID,
		Interpolate:        true,
		InterpolateContext: &b.ctx,
	}, raws...)
	if err != nil {
		return nil, nil, err
	}
	var errs *packer.MultiError
	if err := b.config.Prepare(); err != nil {
		errs = packer.MultiErrorAppend(errs, err)
	}
	if errs != nil && len(errs.Errors) > 0 {
		return nil, nil, errs
	}
	return nil, nil, nil
}

// Run bakes the image and returns its files as an Artifact. Cancelling ctx
// (Ctrl-C in Packer) stops the build and leaves no partial outputs.
func (b *Builder) Run(ctx context.Context, ui packer.Ui, _ packer.Hook) (packer.Artifact, error) {
	res, err := Run(ctx, &b.config, uiLogger(ui))
	if err != nil {
		return nil, err
	}
	return &Artifact{Outputs: res.Outputs, Manifest: res.Manifest}, nil
}

// uiLogger returns a logger that shows Info and above in Packer's UI and
// sends everything, debug lines with the command lines included, to the
// plugin's standard log, which Packer records when PACKER_LOG=1.
func uiLogger(ui packer.Ui) logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(log.Writer())
	l.SetLevel(logrus.DebugLevel)
	l.AddHook(uiHook{ui})
	return l
}

// uiHook forwards log entries to Packer's UI, one line per entry.
type uiHook struct{ ui packer.Ui }

func (uiHook) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel, logrus.InfoLevel}
}

func (h uiHook) Fire(e *logrus.Entry) error {
	line := formatEntry(e)
	if e.Level <= logrus.ErrorLevel {
		h.ui.Error(line)
	} else {
		h.ui.Say(line)
	}
	return nil
}

// formatEntry renders an entry as "step: message key=value ...", keys
// sorted; Packer prefixes each line with the build's name.
func formatEntry(e *logrus.Entry) string {
	var b strings.Builder
	if step, ok := e.Data["step"]; ok {
		fmt.Fprintf(&b, "%v: ", step)
	}
	b.WriteString(e.Message)
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		if k != "step" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, e.Data[k])
	}
	return b.String()
}
