package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/convtrain/convtrain/host/backend"
	"github.com/convtrain/convtrain/host/data"
	"github.com/convtrain/convtrain/host/nn"
)

// ScheduleKind names a learning-rate schedule.
type ScheduleKind int

// The schedules.
const (
	ConstantLR ScheduleKind = iota // lr = base
	StepLR                         // lr = base·Gamma^⌊epoch/Every⌋ (epoch from 0)
	CosineLR                       // lr = base·½(1 + cos(π·step/steps)), per step
)

func (k ScheduleKind) String() string {
	switch k {
	case ConstantLR:
		return "constant"
	case StepLR:
		return "step"
	case CosineLR:
		return "cosine"
	}
	return fmt.Sprintf("ScheduleKind(%d)", int(k))
}

// Schedule is a learning-rate schedule.
type Schedule struct {
	Kind  ScheduleKind
	Every int     // StepLR: epochs between decays (≥ 1)
	Gamma float64 // StepLR: factor per decay, in (0, 1]
	// Warmup is a number of steps of linear warm-up: the rate of step s
	// (from 0) is multiplied by (s+1)/Warmup while s < Warmup; 0: none.
	Warmup int `json:",omitempty"`
}

// LR is the learning rate of step `step` (from 0, counting across epochs)
// of `steps` in all, in epoch `epoch` (from 0).
func (s Schedule) LR(base float64, epoch, step, steps int) float64 {
	if step < s.Warmup {
		base *= float64(step+1) / float64(s.Warmup)
	}
	switch s.Kind {
	case StepLR:
		return base * math.Pow(s.Gamma, float64(epoch/max(s.Every, 1)))
	case CosineLR:
		return base * 0.5 * (1 + math.Cos(math.Pi*float64(step)/float64(max(steps, 1))))
	}
	return base
}

// Config is what Train needs besides the model and the data.
type Config struct {
	Epochs      int     // ≥ 1
	Batch       int     // images per step, 1 to 4096
	LR          float64 // base learning rate, > 0
	Momentum    float64 // in [0, 1); SGD only
	WeightDecay float64 // ≥ 0
	Schedule    Schedule
	Optimizer   nn.Optimizer // the update rule; the zero value is SGD (NewTrainer sets it on the model)
	Seed        uint64       // shuffling; the model's initialisation has its own seed
	// Accum splits each step's Batch images into Accum micro-batches per
	// rank whose gradients are summed (0 or 1: none); see accumStep.
	Accum int `json:",omitempty"`
	// Comm is the data-parallel world (nil: this process alone): Batch is
	// the global batch, each rank takes its slice of every step of one
	// global order, the gradients are summed over the ranks (Reduce), the
	// metrics too, and every stop decision is taken by all ranks.
	Comm   Comm       `json:"-"`
	Reduce ReduceKind `json:",omitempty"`
	// DeviceComm, when set with a Comm of several ranks, reduces the
	// gradients on the backend (deviceStep: NCCL on a GPU) instead of on
	// the host (accumStep); the same bits.
	DeviceComm DeviceComm `json:"-"`
	// SyncBN synchronises BatchNorm over the ranks (nn.BNSync, the sums in
	// rank order): in training every BatchNorm layer normalises with the
	// statistics of the images of all the ranks' micro-batches of the
	// same index (the global batch without accumulation), not its own
	// rank's (the default, as PyTorch's DDP). One rank: no effect.
	SyncBN bool `json:",omitempty"`

	// ProgressEvery calls OnProgress every that many steps (0: never).
	ProgressEvery int
	OnProgress    func(Progress)
	// OnEpoch is called after every epoch's evaluation, before that
	// epoch's OnCheckpoint and OnBest (so that what it records is in the
	// checkpoint).
	OnEpoch func(EpochMetrics)

	// OnCheckpoint, when set, is called after every CheckpointEvery steps
	// (counted across epochs; 0: never) and after each epoch's evaluation,
	// with the trainer at a position that State can save. Before each call
	// the loss and the gradients are checked (see ErrDiverged). An error
	// of OnCheckpoint stops Run.
	CheckpointEvery int
	OnCheckpoint    func() error
	// OnBest, when set, is called after an epoch whose selection accuracy
	// beats that of every earlier epoch (the first epoch's always does; a
	// resumed trainer remembers the best from its TrainState), after
	// OnCheckpoint, with the trainer at a position that State can save.
	// The selection accuracy is the validation set's (SetValidation),
	// which must beat the best by more than MinDelta; without a validation
	// set, the test set's. An error stops Run.
	OnBest func(EpochMetrics) error

	// Graph records the training step once, after the first step of a
	// run, and replays it for every later step (nn.Model.RecordStep),
	// when the backend records steps (the GPU backend) and the step is one
	// batch on one process (Accum ≤ 1, no Comm); otherwise, or without
	// Graph, every step is issued operation by operation. Both give the
	// same bits.
	Graph bool `json:",omitempty"`

	// Augment is the training augmentation (the zero value: none): each
	// step's images are cropped and flipped on the backend
	// (backend.AugmentBatch), image by image as data.Augment.Draw(Seed,
	// epoch from 0, the image's row in the training set) draws.
	Augment data.Augment `json:",omitempty"`
	// TestEveryEpoch evaluates the test set after every epoch when there
	// is a validation set; without it the test set is evaluated after the
	// last epoch only (and after an early stop). Without a validation set
	// the test set is evaluated after every epoch.
	TestEveryEpoch bool `json:",omitempty"`
	// Patience, when > 0, stops training early after that many epochs
	// without a new best validation accuracy (one beating the best by more
	// than MinDelta, a fraction in [0, 1)); it needs a validation set.
	Patience int     `json:",omitempty"`
	MinDelta float64 `json:",omitempty"`
}

// Check validates c.
func (c Config) Check() error {
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("host: epochs %d, want ≥ 1", c.Epochs)
	case c.Batch < 1 || c.Batch > 4096:
		return fmt.Errorf("host: batch %d, want 1 to 4096", c.Batch)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("host: learning rate %g, want > 0", c.LR)
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return fmt.Errorf("host: momentum %g, want in [0, 1)", c.Momentum)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("host: weight decay %g, want ≥ 0", c.WeightDecay)
	case c.ProgressEvery < 0:
		return fmt.Errorf("host: progress every %d steps, want ≥ 0", c.ProgressEvery)
	case c.CheckpointEvery < 0:
		return fmt.Errorf("host: checkpoint every %d steps, want ≥ 0", c.CheckpointEvery)
	case c.Schedule.Kind == StepLR && (c.Schedule.Every < 1 || !(c.Schedule.Gamma > 0 && c.Schedule.Gamma <= 1)):
		return fmt.Errorf("host: step schedule every %d epochs by %g: want every ≥ 1 and gamma in (0, 1]", c.Schedule.Every, c.Schedule.Gamma)
	case c.Schedule.Kind < ConstantLR || c.Schedule.Kind > CosineLR:
		return fmt.Errorf("host: unknown schedule %v", c.Schedule.Kind)
	case c.Schedule.Warmup < 0:
		return fmt.Errorf("host: warm-up of %d steps, want ≥ 0", c.Schedule.Warmup)
	case c.Accum < 0:
		return fmt.Errorf("host: %d micro-batches per step, want ≥ 1", c.Accum)
	case c.DeviceComm != nil && c.Comm == nil:
		return fmt.Errorf("host: a device reduction without a world (Comm) to run it in")
	case c.Reduce != OrderedReduce && c.Reduce != SumReduce:
		return fmt.Errorf("host: unknown reduction %v", c.Reduce)
	case c.Optimizer.Nesterov && c.Optimizer.Kind == nn.SGD && c.Momentum == 0:
		return fmt.Errorf("host: Nesterov momentum needs a momentum > 0")
	case c.Augment.Pad < 0 || c.Augment.Pad > backend.MaxAugmentPad:
		return fmt.Errorf("host: augmentation padding %d, want 0 to %d", c.Augment.Pad, backend.MaxAugmentPad)
	case c.Patience < 0 || !(c.MinDelta >= 0 && c.MinDelta < 1):
		return fmt.Errorf("host: patience %d epochs, minimum improvement %g: want patience ≥ 0 and the improvement in [0, 1)", c.Patience, c.MinDelta)
	}
	return c.Optimizer.Check()
}

// Progress is reported every Config.ProgressEvery steps.
type Progress struct {
	Epoch, Epochs int     // from 1
	Step, Steps   int     // steps done in this epoch, of Steps
	Loss          float64 // mean training loss over this epoch's steps so far
	// Averaged is the number of steps Loss and TrainAcc average: Step, or
	// fewer in an epoch resumed from the middle of a checkpoint that lacks
	// the sums of its first steps. Two reports of an epoch
	// give the mean loss between them: (L₂·n₂ − L₁·n₁)/(n₂ − n₁).
	Averaged     int
	TrainAcc     float64 // fraction correct over the same steps, each before its update
	GlobalStep   int     // steps done in all epochs
	LR           float64
	ImagesPerSec float64 // this epoch so far
	Elapsed      time.Duration
}

// EpochMetrics is reported after each epoch.
type EpochMetrics struct {
	Epoch, Epochs int // from 1
	LR            float64
	Loss          float64 // mean training loss over the epoch's steps
	TrainAcc      float64 // fraction correct on the training batches, before each update
	TestLoss      float64 // mean loss over the test set, when Tested
	TestAcc       float64 // fraction correct on the test set, when Tested
	// Tested says that the test set was evaluated after this epoch
	// (Config.TestEveryEpoch); Validated that the validation set was
	// (SetValidation), with ValLoss and ValAcc as TestLoss and TestAcc.
	Tested, Validated bool
	ValLoss, ValAcc   float64
	// Stop says that training stops early after this epoch
	// (Config.Patience).
	Stop   bool
	Images int // training images processed in the epoch by this run (fewer in a resumed epoch)
	// Averaged is the number of steps Loss and TrainAcc average: the
	// epoch's, or fewer when it resumed from a checkpoint that lacks the
	// sums of its first steps (0: no training metrics).
	Averaged     int
	ImagesPerSec float64 // training throughput (Images / TrainTime)
	TrainTime    time.Duration
	// ReduceTime is the part of TrainTime this rank spent in the
	// gradient all-reduce (waiting for the slowest rank included); 0 in
	// one process.
	ReduceTime time.Duration
	EvalTime   time.Duration
	Elapsed    time.Duration // since Run started
	Best       bool          // the selection accuracy beats every earlier epoch's (see Config.OnBest)
}

// Trainer trains a Model with SGD on a training set and evaluates it on a
// test set after every epoch. Both sets are uploaded to the model's backend
// once, and so is each epoch's order of the training images; a step
// gathers its batch through a view of that order and copies nothing
// between host and device, so on a GPU the steps queue up on one stream
// without the host waiting for them. The loss and accuracy are
// accumulated on the backend and downloaded only to report. Each epoch visits a Fisher–Yates permutation of the training set
// drawn from a PCG stream of Config.Seed, in steps of Batch images; the
// last N mod Batch images of the permutation are dropped (they differ from
// epoch to epoch). The test set is evaluated in full, the last partial
// batch with a batch of its own size; in a world of several ranks each
// rank evaluates its share of the batches and the results are those of
// one process, bit for bit (evaluateSharded).
type Trainer struct {
	m     *nn.Model
	cfg   Config
	train *nn.DeviceSet
	test  evalSet
	val   evalSet   // empty (set nil) without a validation set
	batch *nn.Batch // Config.Batch images, for training and evaluation
	// micro is the micro-batch of an accumulated or data-parallel step
	// (accumStep), nil otherwise; gradAcc and gradTmp hold the gradients
	// of every parameter on the host, in Params order.
	micro            *nn.Batch
	gradAcc, gradTmp []float32
	rng              *rand.Rand
	pcg              *rand.PCG
	epochPCG         rand.PCG // the shuffling state at the start of the current epoch
	perm             []int32
	// order holds perm on the backend, uploaded at the start of each epoch;
	// orderViews[s] is step s's batch of it.
	order      backend.Tensor
	orderViews []backend.Tensor
	// graph is the recorded step (Config.Graph), nil until recorded;
	// noGraph says it will not be (not wanted, or not possible here).
	graph      *nn.StepGraph
	noGraph    bool
	epoch      int // epochs done
	stepEpoch  int // steps done in the current epoch
	step       int // steps done since the start
	host       [1]float32
	start      time.Time
	stepsEpoch int
	norms      []data.Norm // the inputs' standardisation, per channel
	scratch    []float32   // divergence checks: the tensor found not finite, for its norm
	// finite lists the tensors the divergence check reads on the device
	// (values in order, then gradients from the last to the first) and
	// finiteOut receives the index of the first not finite; made at the
	// first check.
	finite    []backend.Tensor
	finiteOut backend.Tensor
	// elapsedBefore is the training time of the runs before a Restore
	// (start is set that much before the resumed run starts); restored is
	// the state restored (its epoch sums start a resumed epoch);
	// epochSums are the current epoch's loss sum and correct count once
	// its steps are done (trained), for State during the evaluation.
	elapsedBefore time.Duration
	lastFinite    int // the step after which the last divergence check passed; −1 before any
	restored      TrainState
	bestEpoch     int     // the epoch (from 1) of the best selection accuracy so far; 0 before any
	bestAcc       float64 // that accuracy
	epochSums     [2]float32
	trained       bool
	reduceTime    time.Duration // in the gradient all-reduce, this epoch so far (accumStep)
	dev           *deviceGrads  // the gradients' reduction on the backend (Config.DeviceComm); nil: on the host
}

// TrainState is the position of a Trainer: with the model's parameter
// values and velocities it is all that a checkpoint needs to resume
// training bit-identically (the same Config, data and backend assumed).
type TrainState struct {
	Epoch     int    // epochs completed
	StepEpoch int    // steps done in epoch Epoch+1 (0 at an epoch boundary)
	Step      int    // steps done in all
	Shuffle   []byte // the shuffling PCG's state at the start of epoch Epoch+1 (rand.PCG.MarshalBinary)

	// The running metrics of epoch Epoch+1 over its StepEpoch steps, as
	// the backend accumulated them (float32): the sum of the steps' mean
	// losses and the count of correct predictions. A resumed epoch starts
	// from them, so it reports what the epoch run straight reports, bit
	// for bit. HasEpochSums is false at an epoch boundary and in
	// checkpoints written before the sums were kept.
	EpochLossSum float32 `json:",omitempty"`
	EpochCorrect float32 `json:",omitempty"`
	HasEpochSums bool    `json:",omitempty"`
	// ElapsedSeconds is the time since training started, over every run
	// that led here; Progress.Elapsed and EpochMetrics.Elapsed continue
	// from it.
	ElapsedSeconds float64 `json:",omitempty"`
	// BestEpoch (from 1; 0 before any evaluation) is the epoch with the
	// best selection accuracy so far (Config.OnBest): BestValAcc, the
	// validation accuracy, in a run with a validation set, else
	// BestTestAcc.
	BestEpoch   int     `json:",omitempty"`
	BestTestAcc float64 `json:",omitempty"`
	BestValAcc  float64 `json:",omitempty"`
	// World is the number of data-parallel ranks that wrote the state (0:
	// one process). Informative: a run resumes on any number of ranks
	// whose micro-batches divide Config.Batch, with the same weights.
	World int `json:",omitempty"`
}

// State returns the trainer's position; after a Run stopped by its
// context, it is the position after the last completed step. In the
// middle of an epoch it reads the epoch's running sums from the backend
// (a synchronisation).
func (t *Trainer) State() (TrainState, error) {
	st := TrainState{Epoch: t.epoch, StepEpoch: t.stepEpoch, Step: t.step, BestEpoch: t.bestEpoch}
	if t.val.set != nil {
		st.BestValAcc = t.bestAcc
	} else {
		st.BestTestAcc = t.bestAcc
	}
	pcg := t.epochPCG
	if t.stepEpoch == 0 {
		pcg = *t.pcg
	}
	var err error
	if st.Shuffle, err = pcg.MarshalBinary(); err != nil {
		return st, fmt.Errorf("host: trainer state: %w", err)
	}
	if t.start.IsZero() {
		st.ElapsedSeconds = t.elapsedBefore.Seconds()
	} else {
		st.ElapsedSeconds = time.Since(t.start).Seconds()
	}
	switch {
	case t.stepEpoch == 0:
	case t.stepEpoch == t.stepsEpoch && t.trained:
		// Stopped in the evaluation, which reuses the batch's sums.
		st.EpochLossSum, st.EpochCorrect, st.HasEpochSums = t.epochSums[0], t.epochSums[1], true
	case t.stepEpoch == t.stepsEpoch:
		// Restored after the epoch's last step and not run since.
		st.EpochLossSum, st.EpochCorrect, st.HasEpochSums = t.restored.EpochLossSum, t.restored.EpochCorrect, t.restored.HasEpochSums
	default:
		v, err := t.readEpochSums()
		if err != nil {
			return st, fmt.Errorf("host: trainer state: %w", err)
		}
		st.EpochLossSum, st.EpochCorrect, st.HasEpochSums = v[0], v[1], true
	}
	if t.world() > 1 {
		// Each rank holds its own part of the sums: a resumed epoch
		// averages over the steps after the resume instead.
		st.EpochLossSum, st.EpochCorrect, st.HasEpochSums = 0, 0, false
		st.World = t.world()
	}
	return st, nil
}

// readEpochSums downloads the batch's running loss sum and correct count.
func (t *Trainer) readEpochSums() ([2]float32, error) {
	var v [2]float32
	b := t.trainBatch()
	err := t.m.Backend().Download(v[:1], b.LossSum)
	if err == nil {
		err = t.m.Backend().Download(v[1:], b.Correct)
	}
	return v, err
}

// Restore moves the trainer to st, as returned by State of a trainer with
// the same Config and data; the next Run continues from there.
func (t *Trainer) Restore(st TrainState) error {
	if st.Epoch < 0 || st.Epoch > t.cfg.Epochs || st.StepEpoch < 0 || st.StepEpoch > t.stepsEpoch ||
		st.Step != st.Epoch*t.stepsEpoch+st.StepEpoch || (st.Epoch == t.cfg.Epochs && st.StepEpoch != 0) {
		return fmt.Errorf("host: restore: epoch %d, step %d of the epoch, step %d: not a position of %d epochs of %d steps",
			st.Epoch, st.StepEpoch, st.Step, t.cfg.Epochs, t.stepsEpoch)
	}
	var pcg rand.PCG
	if err := pcg.UnmarshalBinary(st.Shuffle); err != nil {
		return fmt.Errorf("host: restore: shuffle state: %w", err)
	}
	if (st.HasEpochSums && (st.StepEpoch == 0 || !(st.EpochCorrect >= 0) || float64(st.EpochCorrect) > float64(st.StepEpoch)*float64(t.cfg.Batch))) ||
		(!st.HasEpochSums && (st.EpochLossSum != 0 || st.EpochCorrect != 0)) ||
		!(st.ElapsedSeconds >= 0) || math.IsInf(st.ElapsedSeconds, 0) ||
		st.BestEpoch < 0 || st.BestEpoch > st.Epoch || !(st.BestTestAcc >= 0 && st.BestTestAcc <= 1) ||
		!(st.BestValAcc >= 0 && st.BestValAcc <= 1) || st.World < 0 {
		return fmt.Errorf("host: restore: epoch sums %g and %g after %d steps of %d images, %g s elapsed: not a trainer's",
			st.EpochLossSum, st.EpochCorrect, st.StepEpoch, t.cfg.Batch, st.ElapsedSeconds)
	}
	if (t.val.set == nil && st.BestValAcc != 0) || (t.val.set != nil && st.BestTestAcc != 0) {
		return fmt.Errorf("host: restore: the state's best epoch was selected on the %s set, this trainer selects on the %s set: give the run's validation split (or none) as it trained",
			map[bool]string{true: "validation", false: "test"}[st.BestValAcc != 0], map[bool]string{true: "validation", false: "test"}[t.val.set != nil])
	}
	*t.pcg, t.epochPCG = pcg, pcg
	t.epoch, t.stepEpoch, t.step = st.Epoch, st.StepEpoch, st.Step
	t.restored, t.trained = st, false
	t.bestEpoch, t.bestAcc = st.BestEpoch, st.BestTestAcc
	if t.val.set != nil {
		t.bestAcc = st.BestValAcc
	}
	t.elapsedBefore = time.Duration(st.ElapsedSeconds * float64(time.Second))
	t.start = time.Time{}
	return t.m.SetSteps(st.Step) // Adam's bias corrections continue from there
}

// NewTrainer uploads train and test to m's backend, both standardised
// with the training set's mean and standard deviation of each channel, and allocates the
// batches: one of Config.Batch images and, when the test set is not a
// whole number of batches, one for its remainder.
func NewTrainer(m *nn.Model, train, test *data.Dataset, cfg Config) (*Trainer, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if train.N < cfg.Batch {
		return nil, fmt.Errorf("host: %d training images, fewer than a batch of %d", train.N, cfg.Batch)
	}
	m.SetDropoutSeed(cfg.Seed) // masks from the run's seed, so a resumed run draws the same ones
	if err := m.SetOptimizer(cfg.Optimizer); err != nil {
		return nil, err
	}
	norms := train.ChannelNorm() // for one channel, the bits of Standardisation
	t := &Trainer{m: m, cfg: cfg, stepsEpoch: train.N / cfg.Batch, norms: norms, lastFinite: -1}
	micro, err := cfg.microBatch(t.world())
	if err != nil {
		return nil, err
	}
	if err := t.sameWeights(); err != nil {
		return nil, err
	}
	if cfg.SyncBN && t.world() > 1 {
		if err := m.SetBatchNormSync(&nn.BNSync{World: t.world(), Sum: cfg.Comm.OrderedSum}); err != nil {
			return nil, err
		}
	}
	t.pcg = rand.NewPCG(cfg.Seed, nn.ShuffleStream)
	t.rng = rand.New(t.pcg)
	if t.train, err = m.UploadChannels(train, norms); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	if t.batch, err = m.NewBatch(cfg.Batch); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	if micro < cfg.Batch {
		if t.micro, err = m.NewBatch(micro); err != nil {
			return nil, errors.Join(err, t.Close())
		}
		n := 0
		for _, p := range m.Params() {
			n += p.Value.Len()
		}
		t.gradAcc, t.gradTmp = make([]float32, n), make([]float32, n)
		if cfg.DeviceComm != nil && t.world() > 1 {
			if err := t.newDeviceGrads(t.world(), cfg.accum()); err != nil {
				return nil, errors.Join(err, t.Close())
			}
		}
	}
	if err := t.newEvalSet(&t.test, test); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	t.perm = make([]int32, train.N)
	for i := range t.perm {
		t.perm[i] = int32(i)
	}
	if err := t.newViews(); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	return t, nil
}

// SetValidation uploads val, a validation set (disjoint from the training
// set: data.Dataset.Split), standardised as the training set: from then on
// it is evaluated after every epoch, selects the best epoch (Config.OnBest)
// and early stopping (Config.Patience), and the test set is evaluated
// after the last epoch only unless Config.TestEveryEpoch. Call it once,
// before Restore and Run.
func (t *Trainer) SetValidation(val *data.Dataset) error {
	if t.val.set != nil || t.epoch > 0 || t.stepEpoch > 0 {
		return fmt.Errorf("host: set validation: call it once, before training")
	}
	if err := t.newEvalSet(&t.val, val); err != nil {
		return errors.Join(err, t.val.free(t.m.Backend()))
	}
	return nil
}

// evalSet is a data set evaluated in order, in batches of Config.Batch
// images and one tail batch of the rest.
type evalSet struct {
	set   *nn.DeviceSet
	n     int
	tail  *nn.Batch        // the last N mod Batch images; nil when 0
	idx   backend.Tensor   // the rows 0 … N−1, uploaded once
	views []backend.Tensor // the batches of idx, in order
}

// newEvalSet uploads d into e with the trainer's standardisation and
// makes its batches.
func (t *Trainer) newEvalSet(e *evalSet, d *data.Dataset) error {
	be, batch := t.m.Backend(), t.cfg.Batch
	var err error
	if e.set, err = t.m.UploadChannels(d, t.norms); err != nil {
		return err
	}
	e.n = d.N
	if r := d.N % batch; r != 0 {
		if e.tail, err = t.m.NewBatch(r); err != nil {
			return err
		}
	}
	rows := make([]int32, d.N)
	for i := range rows {
		rows[i] = int32(i)
	}
	if e.idx, err = be.NewIndexTensor(len(rows)); err != nil {
		return err
	}
	if err := be.UploadIndex(e.idx, rows); err != nil {
		return err
	}
	for i, n := 0, len(rows); i < n; {
		v, err := be.IndexView(e.idx, i, min(batch, n-i))
		if err != nil {
			return err
		}
		e.views = append(e.views, v)
		i += v.Len()
	}
	return nil
}

// free releases e's tensors.
func (e *evalSet) free(be backend.Backend) error {
	var errs []error
	if e.set != nil {
		errs = append(errs, e.set.Free(be))
	}
	if e.tail != nil {
		errs = append(errs, e.tail.Free(be))
	}
	if e.idx != nil {
		errs = append(errs, be.Free(e.idx))
	}
	*e = evalSet{}
	return errors.Join(errs...)
}

// newViews allocates the training order on the backend and makes the
// views of it that the steps gather through.
func (t *Trainer) newViews() error {
	be, batch := t.m.Backend(), t.cfg.Batch
	var err error
	if t.order, err = be.NewIndexTensor(len(t.perm)); err != nil {
		return err
	}
	// A step's views: the whole batch, or this rank's micro-batches.
	size, per, rank := batch, 1, 0
	if t.micro != nil {
		size, per = t.micro.N, t.cfg.accum()
		if t.cfg.Comm != nil {
			rank = t.cfg.Comm.Rank()
		}
	}
	for s := range t.stepsEpoch {
		for k := range per {
			v, err := be.IndexView(t.order, s*batch+(rank*per+k)*size, size)
			if err != nil {
				return err
			}
			t.orderViews = append(t.orderViews, v)
		}
	}
	return nil
}

// recordStep records the training step (Config.Graph) after an eager one,
// once, where it can be: a backend that records, one batch on one
// process.
func (t *Trainer) recordStep() error {
	if t.noGraph || t.graph != nil {
		return nil
	}
	if !t.cfg.Graph || t.micro != nil || t.dev != nil || t.cfg.Comm != nil {
		t.noGraph = true
		return nil
	}
	var p backend.AugmentParams
	if a := t.cfg.Augment; a != (data.Augment{}) {
		p = backend.AugmentParams{Pad: a.Pad, Flip: a.Flip, Seed: t.cfg.Seed}
	}
	g, err := t.m.RecordStep(t.batch, t.train, t.order, p)
	if errors.Is(err, nn.ErrNoGraphs) {
		t.noGraph = true
		return nil
	}
	if err != nil {
		return err
	}
	t.graph = g
	return nil
}

// Graphed reports whether the training steps are replays of a recorded
// step (Config.Graph), which holds that many kernel launches.
func (t *Trainer) Graphed() (bool, int) {
	if t.graph == nil {
		return false, 0
	}
	return true, t.graph.Kernels()
}

// loadTraining fills b with the training rows that the view idx names,
// augmented (Config.Augment) on the backend as they are gathered: each
// image as its row in the training set, the seed and the epoch draw it.
func (t *Trainer) loadTraining(b *nn.Batch, idx backend.Tensor) error {
	var p backend.AugmentParams
	if a := t.cfg.Augment; a != (data.Augment{}) {
		p = backend.AugmentParams{Pad: a.Pad, Flip: a.Flip, Seed: t.cfg.Seed, Step: uint64(t.epoch)}
	}
	return t.m.LoadAugmented(b, t.train, idx, p)
}

// Model is the model being trained.
func (t *Trainer) Model() *nn.Model { return t.m }

// Config is the trainer's configuration.
func (t *Trainer) Config() Config { return t.cfg }

// Norms is the standardisation of the inputs, one per channel, from the
// training set (data.Dataset.ChannelNorm).
func (t *Trainer) Norms() []data.Norm { return t.norms }

// StepsPerEpoch is ⌊training images / Batch⌋.
func (t *Trainer) StepsPerEpoch() int { return t.stepsEpoch }

// Epoch is the number of epochs done.
func (t *Trainer) Epoch() int { return t.epoch }

// Close frees the trainer's tensors (not the model's).
func (t *Trainer) Close() error {
	be := t.m.Backend()
	var errs []error
	if t.train != nil {
		errs = append(errs, t.train.Free(be))
	}
	errs = append(errs, t.test.free(be), t.val.free(be))
	for _, b := range []*nn.Batch{t.batch, t.micro} {
		if b != nil {
			errs = append(errs, b.Free(be))
		}
	}
	if t.dev != nil {
		errs = append(errs, t.dev.free(be))
		t.dev = nil
	}
	for _, x := range []backend.Tensor{t.order, t.finiteOut} {
		if x != nil {
			errs = append(errs, be.Free(x))
		}
	}
	if t.cfg.SyncBN && t.world() > 1 {
		errs = append(errs, t.m.SetBatchNormSync(nil))
	}
	if t.graph != nil {
		errs = append(errs, t.graph.Free())
		t.graph = nil
	}
	t.train, t.batch, t.micro, t.order, t.orderViews = nil, nil, nil, nil, nil
	t.finite, t.finiteOut = nil, nil
	return errors.Join(errs...)
}

// Run trains the remaining epochs, calling the callbacks of the Config,
// and returns the metrics of each epoch. It stops between steps with
// ctx.Err() when ctx is done, returning the epochs completed so far.
func (t *Trainer) Run(ctx context.Context) ([]EpochMetrics, error) {
	t.start = time.Now().Add(-t.elapsedBefore)
	var all []EpochMetrics
	for t.epoch < t.cfg.Epochs && !t.Stopped() {
		em, err := t.RunEpoch(ctx)
		if err != nil {
			return all, err
		}
		all = append(all, em)
	}
	return all, nil
}

// Stopped reports whether training has stopped early: Config.Patience
// epochs have passed since the best validation accuracy (a trainer
// restored to such a position runs no more epochs).
func (t *Trainer) Stopped() bool {
	return t.cfg.Patience > 0 && t.val.set != nil && t.bestEpoch > 0 && t.stepEpoch == 0 &&
		t.epoch-t.bestEpoch >= t.cfg.Patience
}

// download reads element 0 of a one-element tensor.
func (t *Trainer) download(x backend.Tensor) (float64, error) {
	if err := t.m.Backend().Download(t.host[:], x); err != nil {
		return 0, err
	}
	return float64(t.host[0]), nil
}

// RunEpoch trains one epoch (or the rest of one, after Restore) and
// evaluates the test set; it is an error once Config.Epochs are done.
func (t *Trainer) RunEpoch(ctx context.Context) (EpochMetrics, error) {
	if t.start.IsZero() {
		t.start = time.Now().Add(-t.elapsedBefore)
	}
	m, b, cfg := t.m, t.trainBatch(), t.cfg
	em := EpochMetrics{Epoch: t.epoch + 1, Epochs: cfg.Epochs}
	if t.epoch >= cfg.Epochs {
		return em, fmt.Errorf("host: all %d epochs are done", cfg.Epochs)
	}
	// The epoch's order depends only on the PCG state at its start: from
	// the identity, Fisher–Yates: for i from N−1 down to 1, swap perm[i]
	// with perm[j], j uniform in [0, i]. A resumed epoch replays it.
	if t.stepEpoch == 0 {
		t.epochPCG = *t.pcg
	} else {
		*t.pcg = t.epochPCG
	}
	for i := range t.perm {
		t.perm[i] = int32(i)
	}
	for i := len(t.perm) - 1; i > 0; i-- {
		j := t.rng.IntN(i + 1)
		t.perm[i], t.perm[j] = t.perm[j], t.perm[i]
	}
	if err := m.Backend().UploadIndex(t.order, t.perm); err != nil {
		return em, fmt.Errorf("host: epoch %d: upload the order: %w", t.epoch+1, err)
	}
	if err := m.ResetMetrics(b); err != nil {
		return em, err
	}
	// The loss and accuracy average over the epoch's steps since base: all
	// of them, unless the epoch resumes in its middle from a checkpoint
	// without the sums of the steps before.
	first, base := t.stepEpoch, 0
	if first > 0 {
		if r := t.restored; r.HasEpochSums && r.Epoch == t.epoch && r.StepEpoch == first {
			if err := errors.Join(m.Backend().Fill(b.LossSum, r.EpochLossSum), m.Backend().Fill(b.Correct, r.EpochCorrect)); err != nil {
				return em, err
			}
		} else {
			base = first
		}
	}
	t.trained, t.reduceTime = false, 0
	total := cfg.Epochs * t.stepsEpoch
	t0 := time.Now()
	var lr float64
	for s := first; s < t.stepsEpoch; s++ {
		ctxErr := ctx.Err() // asked once per step (tests count the calls)
		if err := t.agree(ctxErr != nil, nil); err != nil {
			return em, err
		}
		if err := ctxErr; err != nil {
			t.keepEpochSums()
			if t.stepEpoch == 0 {
				*t.pcg = t.epochPCG // not started: State gives the epoch's shuffling state, not the one after its order was drawn
			}
			return em, err
		}
		lr = cfg.Schedule.LR(cfg.LR, t.epoch, t.step, total)
		var err error
		switch {
		case t.dev != nil:
			err = t.deviceStep(s, lr)
		case t.micro != nil:
			err = t.accumStep(s, lr)
		case t.graph != nil:
			err = t.graph.Run(s*cfg.Batch, uint64(t.epoch), float32(lr), float32(cfg.Momentum), float32(cfg.WeightDecay))
		default:
			if err = t.loadTraining(b, t.orderViews[s]); err == nil {
				err = m.TrainStep(b, float32(lr), float32(cfg.Momentum), float32(cfg.WeightDecay))
			}
			if err == nil {
				err = t.recordStep()
			}
		}
		if err != nil {
			return em, fmt.Errorf("host: epoch %d step %d: %w", t.epoch+1, s+1, err)
		}
		t.step++
		t.stepEpoch++
		report := cfg.ProgressEvery > 0 && ((s+1)%cfg.ProgressEvery == 0 || s+1 == t.stepsEpoch)
		save := cfg.OnCheckpoint != nil && cfg.CheckpointEvery > 0 && t.step%cfg.CheckpointEvery == 0 && s+1 < t.stepsEpoch
		if report || save {
			sum, err := t.download(b.LossSum)
			if err != nil {
				return em, err
			}
			correct, err := t.download(b.Correct)
			if err != nil {
				return em, err
			}
			sum, correct, k, err := t.globalSums(sum, correct)
			if err != nil {
				return em, err
			}
			if err := t.checkDiverged(sum / float64(k)); err != nil {
				return em, err
			}
			if report && cfg.OnProgress != nil {
				dt := time.Since(t0)
				cfg.OnProgress(Progress{Epoch: t.epoch + 1, Epochs: cfg.Epochs, Step: s + 1, Steps: t.stepsEpoch,
					Loss: sum / float64((s+1-base)*k), Averaged: s + 1 - base, TrainAcc: correct / float64((s+1-base)*cfg.Batch),
					GlobalStep: t.step, LR: lr, ImagesPerSec: float64((s+1-first)*cfg.Batch) / dt.Seconds(), Elapsed: time.Since(t.start)})
			}
			if save {
				if err := t.agree(false, cfg.OnCheckpoint()); err != nil {
					return em, fmt.Errorf("host: checkpoint after step %d: %w", t.step, err)
				}
			}
		}
	}
	if err := m.Backend().Sync(); err != nil {
		return em, err
	}
	em.TrainTime, em.ReduceTime = time.Since(t0), t.reduceTime
	sum, err := t.download(b.LossSum)
	if err != nil {
		return em, err
	}
	correct, err := t.download(b.Correct)
	if err != nil {
		return em, err
	}
	t.epochSums, t.trained = [2]float32{float32(sum), float32(correct)}, true
	sum, correct, k, err := t.globalSums(sum, correct)
	if err != nil {
		return em, err
	}
	if first < t.stepsEpoch {
		if err := t.checkDiverged(sum / float64(k)); err != nil {
			return em, err
		}
	}
	em.LR = lr
	em.Images = (t.stepsEpoch - first) * cfg.Batch
	if em.Images > 0 {
		em.ImagesPerSec = float64(em.Images) / em.TrainTime.Seconds()
	}
	// Averaged is 0 when the epoch resumed after its last step from a
	// checkpoint without the epoch's sums: only the evaluation is left.
	if em.Averaged = t.stepsEpoch - base; em.Averaged > 0 {
		em.Loss = sum / float64(em.Averaged*k)
		em.TrainAcc = correct / float64(em.Averaged*cfg.Batch)
	}
	t1 := time.Now()
	if t.val.set != nil {
		if em.ValLoss, em.ValAcc, err = t.evaluate(ctx, &t.val); err != nil {
			return em, err
		}
		em.Validated = true
		if em.Best = t.bestEpoch == 0 || em.ValAcc > t.bestAcc+cfg.MinDelta; em.Best {
			t.bestEpoch, t.bestAcc = em.Epoch, em.ValAcc
		}
		em.Stop = cfg.Patience > 0 && em.Epoch-t.bestEpoch >= cfg.Patience && em.Epoch < cfg.Epochs
	}
	if t.val.set == nil || cfg.TestEveryEpoch || em.Epoch == cfg.Epochs || em.Stop {
		if em.TestLoss, em.TestAcc, err = t.Evaluate(ctx); err != nil {
			return em, err
		}
		em.Tested = true
	}
	em.EvalTime = time.Since(t1)
	em.Elapsed = time.Since(t.start)
	if t.val.set == nil {
		if em.Best = t.bestEpoch == 0 || em.TestAcc > t.bestAcc; em.Best {
			t.bestEpoch, t.bestAcc = em.Epoch, em.TestAcc
		}
	}
	t.epoch++
	t.stepEpoch, t.trained = 0, false
	if cfg.OnEpoch != nil {
		cfg.OnEpoch(em)
	}
	if cfg.OnCheckpoint != nil {
		if err := t.agree(false, cfg.OnCheckpoint()); err != nil {
			return em, fmt.Errorf("host: checkpoint after epoch %d: %w", t.epoch, err)
		}
	}
	if em.Best && cfg.OnBest != nil {
		if err := t.agree(false, cfg.OnBest(em)); err != nil {
			return em, fmt.Errorf("host: best checkpoint after epoch %d: %w", t.epoch, err)
		}
	}
	return em, nil
}

// keepEpochSums keeps the running sums of an epoch stopped in its middle,
// so that the next RunEpoch of this trainer starts from them as from a
// restored state (the batch's sums are reset at the start of an epoch).
// When they cannot be read, the next RunEpoch averages over its own steps.
func (t *Trainer) keepEpochSums() {
	if t.stepEpoch == 0 {
		return
	}
	v, err := t.readEpochSums()
	if err != nil {
		return
	}
	t.restored = TrainState{Epoch: t.epoch, StepEpoch: t.stepEpoch, EpochLossSum: v[0], EpochCorrect: v[1], HasEpochSums: true}
}

// ErrDiverged is wrapped by the error that stops training when the loss,
// a gradient or a parameter is NaN or infinite.
var ErrDiverged = errors.New("training diverged")

// checkDiverged checks, after a step, that every parameter's value and
// gradient and lossSum (the sum of the epoch's batch losses so far) are
// finite: values first, then gradients from the last layer to the first,
// the order in which backpropagation computes them. The error names the
// step and the first parameter (hence the layer) found not finite. The
// check runs on the backend (Backend.FirstNonFinite: on the GPU, on the
// device) and only its answer, one value, is downloaded; the tensor found
// not finite is downloaded for its norm when training has diverged.
func (t *Trainer) checkDiverged(lossSum float64) error {
	ps := t.m.Params()
	be := t.m.Backend()
	if t.finiteOut == nil {
		out, err := be.NewTensor(1)
		if err != nil {
			return fmt.Errorf("host: divergence check: %w", err)
		}
		t.finite, t.finiteOut = make([]backend.Tensor, 0, 2*len(ps)), out
		for _, p := range ps {
			t.finite = append(t.finite, p.Value)
		}
		for i := len(ps) - 1; i >= 0; i-- {
			t.finite = append(t.finite, ps[i].Grad)
		}
	}
	if len(ps) > 0 {
		if err := be.FirstNonFinite(t.finite, t.finiteOut); err != nil {
			return fmt.Errorf("host: divergence check: %w", err)
		}
		first, err := t.download(t.finiteOut)
		if err != nil {
			return fmt.Errorf("host: divergence check: %w", err)
		}
		if i := int(first); i < len(t.finite) {
			p, what, x := ps[min(i, 2*len(ps)-1-i)], "value", t.finite[i]
			if i >= len(ps) {
				what = "gradient"
			}
			if len(t.scratch) < x.Len() {
				t.scratch = make([]float32, x.Len())
			}
			v := t.scratch[:x.Len()]
			if err := be.Download(v, x); err != nil {
				return fmt.Errorf("host: divergence check: %s of %s: %w", what, p.Name, err)
			}
			var sq float64 // at most 2³¹·(3.4e38)² < 1.8e308: no overflow
			for _, e := range v {
				sq += float64(e) * float64(e)
			}
			return fmt.Errorf("host: %s: the %s of %s (layer %s) is not finite, norm %g, mean loss %g: %w",
				t.Where(), what, p.Name, strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(p.Name, "layer"), ".weight"), ".bias"),
				math.Sqrt(sq), lossSum/float64(max(t.stepEpoch, 1)), ErrDiverged)
		}
	}
	if math.IsNaN(lossSum) || math.IsInf(lossSum, 0) {
		return fmt.Errorf("host: %s: the loss is %g with finite parameters and gradients: %w", t.Where(), lossSum, ErrDiverged)
	}
	t.lastFinite = t.step
	return nil
}

// Where names the trainer's position for divergence messages, with the
// last step after which a check found everything finite: the divergence
// happened in a step after that one.
func (t *Trainer) Where() string {
	since := "no check passed since the start of this run"
	if t.lastFinite >= 0 {
		since = fmt.Sprintf("finite at the check after step %d", t.lastFinite)
	}
	return fmt.Sprintf("epoch %d, step %d of %d (step %d in all; %s)", t.epoch+1, t.stepEpoch, t.stepsEpoch, t.step, since)
}

// Evaluate runs the model over the whole test set and returns the mean
// loss per image and the fraction classified correctly.
func (t *Trainer) Evaluate(ctx context.Context) (loss, acc float64, err error) {
	return t.evaluate(ctx, &t.test)
}

// EvaluateValidation is Evaluate on the validation set (SetValidation).
func (t *Trainer) EvaluateValidation(ctx context.Context) (loss, acc float64, err error) {
	if t.val.set == nil {
		return 0, 0, fmt.Errorf("host: evaluate: no validation set")
	}
	return t.evaluate(ctx, &t.val)
}

// evaluate runs the model over e and returns the mean loss per image and
// the fraction classified correctly.
func (t *Trainer) evaluate(ctx context.Context, e *evalSet) (loss, acc float64, err error) {
	if t.world() > 1 {
		return t.evaluateSharded(ctx, e)
	}
	var lossSum, correct float64
	for _, b := range []*nn.Batch{t.batch, e.tail} {
		if b == nil {
			continue
		}
		if err := t.m.ResetMetrics(b); err != nil {
			return 0, 0, err
		}
	}
	n, i := e.n, 0
	for _, idx := range e.views {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		b := t.batch
		if idx.Len() < b.N {
			b = e.tail
		}
		if err := t.m.LoadIndexed(b, e.set, idx); err != nil {
			return 0, 0, err
		}
		b.Eval = true // running statistics; dropout passes through
		err := t.m.Forward(b)
		b.Eval = false
		if err != nil {
			return 0, 0, fmt.Errorf("host: evaluate rows %d to %d: %w", i, i+b.N, err)
		}
		i += b.N
	}
	// LossSum holds per-batch means: weight them back to per-image sums.
	for _, b := range []*nn.Batch{t.batch, e.tail} {
		if b == nil {
			continue
		}
		s, err := t.download(b.LossSum)
		if err != nil {
			return 0, 0, err
		}
		c, err := t.download(b.Correct)
		if err != nil {
			return 0, 0, err
		}
		lossSum += s * float64(b.N)
		correct += c
	}
	return lossSum / float64(n), correct / float64(n), nil
}
