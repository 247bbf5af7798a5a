/**
 * The TensorFlow ops a trainable SavedModel may run (op-check.ts): computation only. An allow-list,
 * not a deny-list: an op that is not here is refused, whatever it does. What is here: every op that
 * tools/export_trainable_savedmodel.py writes for the shipped and test models (test/fixtures/
 * savedmodel/, the bench models), and the ops of the common Keras 3 layers, losses and optimizers
 * (forward and gradient), control flow, and stateless or seeded random numbers; test/savedmodel-
 * keras-ops.e2e.test.ts exports such models with the installed TensorFlow and checks that they pass
 * (test/fixtures/savedmodel/keras_layer_zoo.py). What is never here:
 * ops that read or write files (ReadFile, WriteFile, MatchingFiles, SaveV2, the dataset and
 * summary-writer ops, table initializers from files), the network, processes, Python (PyFunc,
 * EagerPyFunc), printing to a file (PrintV2's output_stream), and debugging hooks (DebugIdentity*).
 */

/** Pure computation and the variables' own reads and writes. */
export const COMPUTATION_OPS: ReadonlySet<string> = new Set([
  // Graph plumbing and variables.
  'Const', 'Placeholder', 'PlaceholderWithDefault', 'Identity', 'IdentityN', 'NoOp', 'StopGradient', 'PreventGradient',
  'Snapshot', 'EnsureShape', 'CheckNumerics', 'CheckNumericsV2', 'Assert',
  'VarHandleOp', 'ReadVariableOp', 'AssignVariableOp', 'AssignAddVariableOp', 'AssignSubVariableOp', 'VarIsInitializedOp',
  'VariableShape', 'DestroyResourceOp', 'DisableCopyOnRead', 'ResourceGather', 'ResourceGatherNd',
  'ResourceScatterAdd', 'ResourceScatterSub', 'ResourceScatterMul', 'ResourceScatterDiv', 'ResourceScatterMin',
  'ResourceScatterMax', 'ResourceScatterUpdate', 'ResourceScatterNdAdd', 'ResourceScatterNdSub', 'ResourceScatterNdUpdate',
  'ResourceStridedSliceAssign',
  // Function calls and control flow (the functions they call are checked too).
  'PartitionedCall', 'StatefulPartitionedCall', 'If', 'StatelessIf', 'While', 'StatelessWhile', 'Case', 'StatelessCase',
  'Switch', 'Merge', 'Enter', 'Exit', 'NextIteration', 'LoopCond', 'ControlTrigger',
  'TensorListReserve', 'TensorListFromTensor', 'TensorListStack', 'TensorListGetItem', 'TensorListSetItem',
  'TensorListElementShape', 'TensorListLength', 'TensorListPushBack', 'TensorListPopBack', 'TensorListConcatV2',
  'TensorListSplit', 'TensorListGather', 'TensorListScatterIntoExistingList', 'TensorListResize', 'EmptyTensorList',
  // Arithmetic, elementwise.
  'Add', 'AddV2', 'AddN', 'Sub', 'Mul', 'MulNoNan', 'Div', 'DivNoNan', 'RealDiv', 'FloorDiv', 'FloorMod', 'TruncateDiv',
  'TruncateMod', 'Mod', 'Maximum', 'Minimum', 'Pow', 'SquaredDifference', 'Neg', 'Abs', 'Sign', 'Reciprocal', 'Inv',
  'Square', 'Sqrt', 'Rsqrt', 'Exp', 'Expm1', 'Log', 'Log1p', 'Floor', 'Ceil', 'Round', 'Rint', 'ClipByValue',
  'Sin', 'Cos', 'Tan', 'Asin', 'Acos', 'Atan', 'Atan2', 'Sinh', 'Cosh', 'Tanh', 'Asinh', 'Acosh', 'Atanh',
  'Erf', 'Erfc', 'Erfinv', 'Lgamma', 'Digamma', 'Xlogy', 'Xdivy', 'Xlog1py', 'IsNan', 'IsInf', 'IsFinite',
  'SqrtGrad', 'RsqrtGrad', 'ReciprocalGrad', 'InvGrad',
  'Equal', 'NotEqual', 'Less', 'LessEqual', 'Greater', 'GreaterEqual', 'ApproximateEqual',
  'LogicalAnd', 'LogicalOr', 'LogicalNot', 'Select', 'SelectV2', 'Where',
  'BitwiseAnd', 'BitwiseOr', 'BitwiseXor', 'Invert', 'LeftShift', 'RightShift', 'Cast', 'Bitcast',
  // Reductions, scans, sorting.
  'Sum', 'Mean', 'Prod', 'Max', 'Min', 'Any', 'All', 'ArgMax', 'ArgMin', 'EuclideanNorm', 'Cumsum', 'Cumprod',
  'CumulativeLogsumexp', 'TopKV2', 'InTopKV2', 'UnsortedSegmentSum', 'UnsortedSegmentMax', 'UnsortedSegmentMin',
  'UnsortedSegmentProd', 'SegmentSum', 'SegmentMean', 'SegmentMax', 'SegmentMin', 'Bincount', 'DenseBincount',
  'BroadcastGradientArgs',
  // Shapes and indexing.
  'Shape', 'ShapeN', 'Size', 'Rank', 'Reshape', 'Squeeze', 'ExpandDims', 'Transpose', 'ConjugateTranspose',
  'ConcatV2', 'Concat', 'ConcatOffset', 'Pack', 'Unpack', 'Split', 'SplitV', 'Slice', 'StridedSlice', 'StridedSliceGrad',
  'TensorStridedSliceUpdate', 'Tile', 'TileGrad', 'Fill', 'ZerosLike', 'OnesLike', 'Range', 'LinSpace', 'BroadcastTo',
  'BroadcastArgs', 'Gather', 'GatherV2', 'GatherNd', 'ScatterNd', 'TensorScatterUpdate', 'TensorScatterAdd',
  'TensorScatterSub', 'TensorScatterMax', 'TensorScatterMin', 'Pad', 'PadV2', 'MirrorPad', 'MirrorPadGrad', 'Reverse',
  'ReverseV2', 'ReverseSequence', 'OneHot', 'DynamicStitch', 'ParallelDynamicStitch', 'DynamicPartition', 'InvertPermutation',
  'MatrixBandPart', 'MatrixDiag', 'MatrixDiagV2', 'MatrixDiagV3', 'MatrixDiagPart', 'MatrixDiagPartV2', 'MatrixDiagPartV3',
  'MatrixSetDiag', 'MatrixSetDiagV2', 'MatrixSetDiagV3', 'Diag', 'DiagPart', 'SpaceToDepth', 'DepthToSpace',
  'SpaceToBatchND', 'BatchToSpaceND', 'ExtractImagePatches', 'Unique', 'UniqueV2', 'ListDiff', 'Einsum',
  // Linear algebra, convolutions, pooling, normalisation.
  'MatMul', 'BatchMatMul', 'BatchMatMulV2', 'BatchMatMulV3', 'BiasAdd', 'BiasAddV1', 'BiasAddGrad',
  'Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'Conv3D', 'Conv3DBackpropInputV2',
  'Conv3DBackpropFilterV2', 'DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter', 'MaxPool', 'MaxPoolV2', 'MaxPoolGrad', 'MaxPoolGradV2', 'MaxPoolGradGrad',
  'MaxPool3D', 'MaxPool3DGrad', 'AvgPool', 'AvgPoolGrad', 'AvgPool3D', 'AvgPool3DGrad', 'FusedBatchNorm',
  'FusedBatchNormV2', 'FusedBatchNormV3', 'FusedBatchNormGrad', 'FusedBatchNormGradV2', 'FusedBatchNormGradV3',
  'ResizeBilinear', 'ResizeBilinearGrad', 'ResizeNearestNeighbor', 'ResizeNearestNeighborGrad',
  'Cholesky', 'MatrixInverse', 'MatrixDeterminant', 'MatrixTriangularSolve', 'Qr', 'Svd', 'SelfAdjointEigV2',
  // Activations, losses (forward and gradient).
  'Relu', 'Relu6', 'Elu', 'Selu', 'LeakyRelu', 'Softplus', 'Softsign', 'Sigmoid', 'Softmax', 'LogSoftmax',
  'ReluGrad', 'Relu6Grad', 'EluGrad', 'SeluGrad', 'LeakyReluGrad', 'SoftplusGrad', 'SoftsignGrad', 'SigmoidGrad', 'TanhGrad',
  'SoftmaxCrossEntropyWithLogits', 'SparseSoftmaxCrossEntropyWithLogits',
  // Random numbers: stateless (Keras 3 seed generators) and the seeded stateful kernels.
  'StatelessRandomUniform', 'StatelessRandomUniformV2', 'StatelessRandomUniformInt', 'StatelessRandomUniformIntV2',
  'StatelessRandomUniformFullInt', 'StatelessRandomUniformFullIntV2', 'StatelessRandomNormal', 'StatelessRandomNormalV2',
  'StatelessTruncatedNormal', 'StatelessTruncatedNormalV2', 'StatelessRandomGetKeyCounter', 'StatelessRandomGetKeyCounterAlg',
  'StatelessRandomGetAlg', 'StatelessMultinomial', 'StatelessRandomBinomial', 'StatelessShuffle',
  'RandomUniform', 'RandomUniformInt', 'RandomStandardNormal', 'TruncatedNormal', 'RandomShuffle', 'Multinomial',
  // tf.random.Generator (a counter in a variable).
  'RngReadAndSkip', 'RngSkip', 'StatefulUniform', 'StatefulUniformInt', 'StatefulUniformFullInt',
  'StatefulStandardNormalV2', 'StatefulTruncatedNormal',
]);

/**
 * The saver's restore subgraph (SaverDef.restore_op_name), which TensorFlow's loader runs once
 * when the SavedModel is loaded, to read the exported variables from variables/: RestoreV2 there
 * and nowhere else. The save subgraph (SaveV2, MergeV2Checkpoints) is never run by the route, so
 * it is not walked; reached from a signature, SaveV2 is refused like any other op not listed.
 */
export const RESTORE_OPS: ReadonlySet<string> = new Set(['RestoreV2']);

/** Why a few well-known ops are refused, for the message; any op not allowed is refused. */
export const KNOWN_UNSAFE: Readonly<Record<string, string>> = {
  ReadFile: 'it reads a file',
  WriteFile: 'it writes a file',
  MatchingFiles: 'it lists files',
  SaveV2: 'it writes a checkpoint to a path of its choosing',
  Save: 'it writes a checkpoint to a path of its choosing',
  SaveSlices: 'it writes a checkpoint to a path of its choosing',
  RestoreV2: 'it reads a checkpoint from a path of its choosing',
  Restore: 'it reads a checkpoint from a path of its choosing',
  MergeV2Checkpoints: 'it moves checkpoint files',
  PyFunc: 'it runs Python',
  PyFuncStateless: 'it runs Python',
  EagerPyFunc: 'it runs Python',
  PrintV2: 'it prints, possibly to a file',
  Print: 'it prints',
  DebugIdentity: 'it dumps tensors for a debugger',
  DebugIdentityV2: 'it dumps tensors for a debugger',
  DebugIdentityV3: 'it dumps tensors for a debugger',
  WriteSummary: 'it writes summaries to a file',
  CreateSummaryFileWriter: 'it writes summaries to a file',
  InitializeTableFromTextFile: 'it reads a file',
  InitializeTableFromTextFileV2: 'it reads a file',
  ImmutableConst: 'it maps a file into memory',
};
