package ptxsim

import "strings"

// The opcode table: opcodes, instruction classes, type codes, the decoded
// instruction, its flags, rounding modes, comparisons and special registers.

type opcode uint16

const (
	opNop opcode = iota
	opBra
	opExit
	opTrap
	opBar
	opColl
	opActivemask

	opMov    // d = a & mask
	opPack   // d = v[0] | v[1]<<w | ...
	opUnpack // v[i] = a >> (i*w) & mask
	opSext   // d = sext(a, sh) & mask
	opAddImm // d = (a + imm) & mask
	opSelp   // d = c ? a : b
	opSlctS  // d = int(c) >= 0 ? a : b
	opSlctF  // d = float32(c) >= 0 ? a : b

	// integer, result & mask, signed operands sign-extended by sh
	opAdd
	opSub
	opMulLo
	opMadLo
	opAnd
	opOr
	opXor
	opNot
	opNeg
	opShl
	opShrU
	opShrS
	opMulHiS
	opMulHiU
	opMulHiS64
	opMulHiU64
	opMulWideS
	opMulWideU
	opMadWideS
	opMadWideU
	opMadHiS
	opMadHiU
	opDivS
	opDivU
	opRemS
	opRemU
	opMinS
	opMinU
	opMaxS
	opMaxU
	opAbsS
	opPopc
	opClz
	opBrev
	opBfind
	opBfeS
	opBfeU
	opBfi
	opPrmt
	opLop3
	opShfL
	opShfR
	opCnot
	opAddSatS32
	opSubSatS32
	opMadHiSatS32 // d = sat32((a*b)>>32 + c), signed

	opSetpS // cmp in sub
	opSetpU
	opSetpF32
	opSetpF64
	opSetGeneric

	// float32
	opAddF32
	opSubF32
	opMulF32
	opFmaF32
	opAddF32Ftz
	opSubF32Ftz
	opMulF32Ftz
	opFmaF32Ftz
	opF32Slow // add/sub/mul/fma/div/sqrt/rcp with rounding/ftz/sat modifiers: sub = fop
	opDivF32
	opDivApproxF32
	opSqrtF32
	opRcpF32
	opMinF32
	opMaxF32
	opAbsF32
	opNegF32
	opF32Unary // approximate unary: sub = uop
	opCopysignF32
	opTestpF32

	// float64
	opAddF64
	opSubF64
	opMulF64
	opFmaF64
	opF64Slow
	opDivF64
	opSqrtF64
	opRcpF64
	opMinF64
	opMaxF64
	opAbsF64
	opNegF64
	opF64Unary
	opCopysignF64
	opTestpF64

	opCvt // generic conversion

	opLdGlobal
	opLdShared
	opLdLocal
	opLdParam
	opLdGeneric
	opStGlobal
	opStShared
	opStLocal
	opStGeneric
	opStParam
	opAtom
	opCall
	opRet
	opIsspacep
	opCpAsync
	opLdConst
	opClock
	opCvtTF32
	opCvtPack     // cvt.rn.{bf16x2,f16x2}.f32 d, a, b: a to the upper half, b to the lower
	opCpAsyncWait // cp.async.commit_group (sub 0), wait_group imm (sub 1), wait_all (sub 2)

	numOps
)

// instruction classes for Stats.Instructions.
const (
	clsInt = iota
	clsFP32
	clsFP64
	clsMov
	clsConvert
	clsMemGlobal
	clsMemShared
	clsMemLocal
	clsMemParam
	clsAtomic
	clsControl
	clsSync
	clsWarp
	clsSpecial
	clsMemConst
	clsMma
	numClasses
)

var className = [numClasses]string{"int", "fp32", "fp64", "mov", "convert", "mem.global", "mem.shared",
	"mem.local", "mem.param", "atomic", "control", "sync", "warp", "special", "mem.const", "mma"}

// type codes: kind<<4 | log2(bytes)
const (
	kU    = 1
	kS    = 2
	kF    = 3
	kPred = 4
	kB    = 5
	kBF   = 6
)

func typeCode(t string) uint8 {
	n := typeSize(t)
	l := uint8(0)
	for 1<<l < n {
		l++
	}
	switch t[0] {
	case 'u':
		return kU<<4 | l
	case 's':
		return kS<<4 | l
	case 'f':
		return kF<<4 | l
	case 'b':
		if strings.HasPrefix(t, "bf") {
			return kBF<<4 | l
		}
		return kB<<4 | l
	case 'p':
		return kPred << 4
	}
	return 0
}

// inst is a pre-decoded instruction.
type inst struct {
	op    opcode
	sz    uint8 // bytes of an access or operand
	nv    uint8 // vector elements
	sub   uint8 // comparison, sub-operation, mode
	sub2  uint8
	sh    uint8 // 64 - operand bits, for sign extension
	rnd   uint8
	ta    uint8 // source type code
	td    uint8 // destination type code
	flags uint8
	p     int32 // guard register
	d     int32
	a     int32
	b     int32
	c     int32
	e     int32
	pv    uint64 // execute when regs[p] == pv
	mask  uint64
	imm   int64
	v     [4]int32
}

// flags
const (
	fFtz = 1 << iota
	fSat
	fNegC // negated predicate source c
	fNaN  // min/max .NaN
	fSigned
	fNegA
)

// rounding modes
const (
	rnNone = iota
	rnRN
	rnRZ
	rnRM
	rnRP
	rnRNI
	rnRZI
	rnRMI
	rnRPI
	rnRNA
)

// comparison operators
const (
	cmpEq = iota
	cmpNe
	cmpLt
	cmpLe
	cmpGt
	cmpGe
	cmpEqu
	cmpNeu
	cmpLtu
	cmpLeu
	cmpGtu
	cmpGeu
	cmpNum
	cmpNan
)

var cmpNames = map[string]uint8{"eq": cmpEq, "ne": cmpNe, "lt": cmpLt, "le": cmpLe, "gt": cmpGt, "ge": cmpGe,
	"lo": cmpLt, "ls": cmpLe, "hi": cmpGt, "hs": cmpGe,
	"equ": cmpEqu, "neu": cmpNeu, "ltu": cmpLtu, "leu": cmpLeu, "gtu": cmpGtu, "geu": cmpGeu, "num": cmpNum, "nan": cmpNan}

// special registers
const (
	spTidX = iota
	spTidY
	spTidZ
	spNtidX
	spNtidY
	spNtidZ
	spCtaidX
	spCtaidY
	spCtaidZ
	spNctaidX
	spNctaidY
	spNctaidZ
	spLaneid
	spWarpid
	spNwarpid
	spLanemaskEq
	spLanemaskLt
	spLanemaskLe
	spLanemaskGt
	spLanemaskGe
	spSmid
	spNsmid
	spGridid
)

var specialNames = map[string]int{"%tid.x": spTidX, "%tid.y": spTidY, "%tid.z": spTidZ,
	"%ntid.x": spNtidX, "%ntid.y": spNtidY, "%ntid.z": spNtidZ,
	"%ctaid.x": spCtaidX, "%ctaid.y": spCtaidY, "%ctaid.z": spCtaidZ,
	"%nctaid.x": spNctaidX, "%nctaid.y": spNctaidY, "%nctaid.z": spNctaidZ,
	"%laneid": spLaneid, "%warpid": spWarpid, "%nwarpid": spNwarpid,
	"%lanemask_eq": spLanemaskEq, "%lanemask_lt": spLanemaskLt, "%lanemask_le": spLanemaskLe,
	"%lanemask_gt": spLanemaskGt, "%lanemask_ge": spLanemaskGe, "%smid": spSmid, "%nsmid": spNsmid, "%gridid": spGridid}

type special struct {
	slot int32
	kind int
}

func opClass(in *inst) uint8 {
	switch in.op {
	case opNop:
		if in.sub == 1 {
			return clsSync
		}
		return clsControl
	case opBra, opExit, opTrap, opRet, opCall:
		return clsControl
	case opBar, opCpAsyncWait:
		return clsSync
	case opColl:
		switch in.sub {
		case collMma:
			return clsMma
		case collLdmatrix:
			return clsMemShared
		}
		return clsWarp
	case opActivemask:
		return clsWarp
	case opMov, opPack, opUnpack, opAddImm, opSelp, opSlctS, opSlctF:
		return clsMov
	case opSext, opCvt, opCvtTF32, opCvtPack:
		return clsConvert
	case opLdGlobal, opStGlobal:
		return clsMemGlobal
	case opLdShared, opStShared, opCpAsync:
		return clsMemShared
	case opLdConst:
		return clsMemConst
	case opClock:
		return clsSpecial
	case opLdLocal, opStLocal:
		return clsMemLocal
	case opLdParam, opStParam:
		return clsMemParam
	case opLdGeneric, opStGeneric:
		return clsMemGlobal
	case opAtom:
		return clsAtomic
	case opSetpF32, opAddF32, opSubF32, opMulF32, opFmaF32, opAddF32Ftz, opSubF32Ftz, opMulF32Ftz, opFmaF32Ftz,
		opF32Slow, opDivF32, opDivApproxF32, opSqrtF32, opRcpF32, opMinF32, opMaxF32, opAbsF32, opNegF32,
		opF32Unary, opCopysignF32, opTestpF32:
		return clsFP32
	case opSetpF64, opAddF64, opSubF64, opMulF64, opFmaF64, opF64Slow, opDivF64, opSqrtF64, opRcpF64,
		opMinF64, opMaxF64, opAbsF64, opNegF64, opF64Unary, opCopysignF64, opTestpF64:
		return clsFP64
	}
	return clsInt
}
