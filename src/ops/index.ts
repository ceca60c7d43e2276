// Every differentiable op, one import away. Each file keeps an op's forward launch and backward rule together.
export * from './elementwise.ts';
export * from './reduce.ts';
export * from './matmul.ts';
export * from './reshape.ts';
export * from './attention.ts';
export * from './conv.ts';
export * from './pool.ts';
export * from './groupnorm.ts';
export * from './indexing.ts';
export * from './softmax.ts';
export * from './losses.ts';
export * from './layernorm.ts';
