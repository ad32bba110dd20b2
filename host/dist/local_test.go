package dist

import (
	"strings"
	"testing"
)

func TestLocal(t *testing.T) {
	var l Local
	if r, s := l.Rank(), l.Size(); r != 0 || s != 1 {
		t.Fatalf("Rank, Size = %d, %d, want 0, 1", r, s)
	}
	buf := []float32{1.5, -2, 3}
	if err := l.AllreduceSum(buf); err != nil || buf[0] != 1.5 || buf[1] != -2 || buf[2] != 3 {
		t.Errorf("AllreduceSum = %v, buf %v, want nil, [1.5 -2 3]", err, buf)
	}
	if err := l.OrderedSum(buf); err != nil || buf[0] != 1.5 || buf[1] != -2 || buf[2] != 3 {
		t.Errorf("OrderedSum = %v, buf %v, want nil, [1.5 -2 3]", err, buf)
	}
	f64 := []float64{0.25, 7}
	if err := l.AllreduceSumF64(f64); err != nil || f64[0] != 0.25 || f64[1] != 7 {
		t.Errorf("AllreduceSumF64 = %v, buf %v, want nil, [0.25 7]", err, f64)
	}
	if got, err := l.AllreduceMaxInt64(-9); err != nil || got != -9 {
		t.Errorf("AllreduceMaxInt64(-9) = %d, %v, want -9, nil", got, err)
	}
	for _, flag := range []bool{false, true} {
		if got, err := l.AnyTrue(flag); err != nil || got != flag {
			t.Errorf("AnyTrue(%v) = %v, %v, want %v, nil", flag, got, err, flag)
		}
	}
	if got, err := l.Same(12345); err != nil || !got {
		t.Errorf("Same = %v, %v, want true, nil", got, err)
	}
	dst := make([]float32, 3)
	if err := l.Allgather(dst, buf); err != nil || dst[0] != 1.5 || dst[1] != -2 || dst[2] != 3 {
		t.Errorf("Allgather = %v, dst %v, want nil, [1.5 -2 3]", err, dst)
	}
	if err := l.Allgather(make([]float32, 4), buf); err == nil || !strings.Contains(err.Error(), "want 3") {
		t.Errorf("Allgather(4 values, 3 values) = %v, want an error saying want 3", err)
	}
	b := []byte("abc")
	if err := l.Bcast(b, 0); err != nil || string(b) != "abc" {
		t.Errorf("Bcast(root 0) = %v, buf %q, want nil, abc", err, b)
	}
	if err := l.Bcast(b, 1); err == nil || !strings.Contains(err.Error(), "root 1 out of range") {
		t.Errorf("Bcast(root 1) = %v, want a root out of range error", err)
	}
	if err := l.Barrier(); err != nil {
		t.Errorf("Barrier = %v, want nil", err)
	}
	if err := l.Abort(3); err != nil {
		t.Errorf("Abort = %v, want nil", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
}
