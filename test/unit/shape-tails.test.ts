// The main thread's kept shape transactions: what they answer, and when they must answer nothing
// (null: ask the materializer) rather than a wrong stretch of the log.
import { describe, expect, it } from 'vitest';
import { ShapeTails } from '../../src/daemon/shape-tails.ts';

const tail = (from: string, offset: string, ...messages: string[]) => ({
  handle: 'h',
  from,
  offset,
  messages,
});

describe('ShapeTails', () => {
  it('answers a reader at the head with nothing, and one a few transactions behind with all it missed', () => {
    const tails = new ShapeTails(3);
    tails.add(tail('1_0', '2_0', 'a'));
    tails.add(tail('2_0', '3_1', 'b', 'c'));
    tails.add(tail('3_1', '4_0', 'd'));
    expect(tails.after('h', '4_0', 100)).toEqual({ messages: [], offset: '4_0' });
    expect(tails.after('h', '3_1', 100)).toEqual({ messages: ['d'], offset: '4_0' });
    expect(tails.after('h', '1_0', 100)).toEqual({ messages: ['a', 'b', 'c', 'd'], offset: '4_0' });
    // Past what is kept, past the limit, at an offset no transaction starts at, another shape: ask.
    tails.add(tail('4_0', '5_0', 'e'));
    expect(tails.after('h', '1_0', 100)).toBeNull();
    expect(tails.after('h', '2_0', 100)).toEqual({ messages: ['b', 'c', 'd', 'e'], offset: '5_0' });
    expect(tails.after('h', '2_0', 3)).toBeNull();
    expect(tails.after('h', '2_1', 100)).toBeNull();
    expect(tails.after('other', '5_0', 100)).toBeNull();
  });

  it('starts over at a transaction that does not continue the kept ones, and forgets on demand', () => {
    const tails = new ShapeTails();
    tails.add(tail('1_0', '2_0', 'a'));
    // The shape grew by a transaction this thread never saw: what it kept is not the log any more.
    tails.add(tail('3_0', '4_0', 'c'));
    expect(tails.after('h', '1_0', 100)).toBeNull();
    expect(tails.after('h', '2_0', 100)).toBeNull();
    expect(tails.after('h', '3_0', 100)).toEqual({ messages: ['c'], offset: '4_0' });
    // Changed without its messages: not even "nothing new" at the old head.
    tails.forget('h');
    expect(tails.after('h', '4_0', 100)).toBeNull();
  });
});
