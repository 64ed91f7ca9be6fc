// Original file: proto/hookvisor/v1/hookvisor.proto

/**
 * Why a verdict blocks.
 */
export const BlockKind = {
  BLOCK_KIND_UNSPECIFIED: 'BLOCK_KIND_UNSPECIFIED',
  /**
   * A plugin answered with a block.
   */
  BLOCK_KIND_POLICY: 'BLOCK_KIND_POLICY',
  /**
   * A plugin failed to give a valid answer in time (see Failure).
   */
  BLOCK_KIND_FAILURE: 'BLOCK_KIND_FAILURE',
} as const;

/**
 * Why a verdict blocks.
 */
export type BlockKind =
  | 'BLOCK_KIND_UNSPECIFIED'
  | 0
  /**
   * A plugin answered with a block.
   */
  | 'BLOCK_KIND_POLICY'
  | 1
  /**
   * A plugin failed to give a valid answer in time (see Failure).
   */
  | 'BLOCK_KIND_FAILURE'
  | 2

/**
 * Why a verdict blocks.
 */
export type BlockKind__Output = typeof BlockKind[keyof typeof BlockKind]
