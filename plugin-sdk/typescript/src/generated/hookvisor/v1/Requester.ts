// Original file: proto/hookvisor/v1/hookvisor.proto


/**
 * Who asked the agent to act.
 */
export interface Requester {
  /**
   * Messaging channel, e.g. "telegram".
   */
  'channel'?: (string);
  /**
   * The account on that channel the agent runs under.
   */
  'account_id'?: (string);
  /**
   * The sender of the message that started the run.
   */
  'sender_id'?: (string);
  /**
   * Whether that sender owns the agent.
   */
  'sender_is_owner'?: (boolean);
}

/**
 * Who asked the agent to act.
 */
export interface Requester__Output {
  /**
   * Messaging channel, e.g. "telegram".
   */
  'channel': (string);
  /**
   * The account on that channel the agent runs under.
   */
  'account_id': (string);
  /**
   * The sender of the message that started the run.
   */
  'sender_id': (string);
  /**
   * Whether that sender owns the agent.
   */
  'sender_is_owner': (boolean);
}
