package flux

import (
	"testing"

	"github.com/carehub/carehub/internal/testenv"
)

// TestMain stops the influxd that this package's tests share.
func TestMain(m *testing.M) { testenv.Main(m) }
