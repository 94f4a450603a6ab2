import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { plan, minus, KINDS, type PlannedAction } from '../../src/core/plan.js';

const brief = (actions: PlannedAction[]): string[] => actions.map((a) => `${a.op} ${a.kind} ${a.name} (${a.why})`);

describe('minus', () => {
  test('compares names exactly: "vlan" does not match "macvlan"', () => {
    assert.deepEqual(minus(['vlan'], ['macvlan']), ['vlan']);
    assert.deepEqual(minus(['macvlan'], ['vlan']), ['macvlan']);
    assert.deepEqual(minus(['macvlan', 'vlan', 'ipvlan'], ['vlan']), ['macvlan', 'ipvlan']);
    assert.deepEqual(minus(['a.conf'], ['a.conflist', 'A.conf', 'a.conf ']), ['a.conf']);
  });
  test('keeps the order of the first list', () => {
    assert.deepEqual(minus(['d', 'a', 'c', 'b'], ['a']), ['d', 'c', 'b']);
  });
  test('empty cases', () => {
    assert.deepEqual(minus([], ['a']), []);
    assert.deepEqual(minus(['a'], []), ['a']);
  });
});

describe('plan: apply', () => {
  test('the issue example: --plugins=multus,macvlan:host-device,multus,ipvlan', () => {
    const actions = plan('apply', { plugin: { desired: ['multus', 'macvlan'], current: ['host-device', 'multus', 'ipvlan'] } });
    assert.deepEqual(brief(actions), [
      'ensure plugin multus (kept)',
      'ensure plugin macvlan (added)',
      // removed in reverse of the current order
      'remove plugin ipvlan (removed)',
      'remove plugin host-device (removed)',
    ]);
  });

  test('exact names: vlan is removed even though macvlan is desired', () => {
    const actions = plan('apply', { plugin: { desired: ['macvlan'], current: ['vlan'] } });
    assert.deepEqual(brief(actions), ['ensure plugin macvlan (added)', 'remove plugin vlan (removed)']);
    const back = plan('apply', { plugin: { desired: ['vlan'], current: ['macvlan', 'ipvlan'] } });
    assert.deepEqual(brief(back), ['ensure plugin vlan (added)', 'remove plugin ipvlan (removed)', 'remove plugin macvlan (removed)']);
  });

  test('added items come in desired order', () => {
    const actions = plan('apply', { plugin: { desired: ['z', 'a', 'm'], current: [] } });
    assert.deepEqual(
      actions.map((a) => a.name),
      ['z', 'a', 'm'],
    );
    assert.ok(actions.every((a) => a.op === 'ensure' && a.why === 'added'));
  });

  test('removed items come in reverse current order', () => {
    const actions = plan('apply', { config: { desired: [], current: ['a.conf', 'b.conf', 'c.conf'] } });
    assert.deepEqual(brief(actions), ['remove config c.conf (removed)', 'remove config b.conf (removed)', 'remove config a.conf (removed)']);
  });

  test('additions of every kind come before any removal; removals run manifests → configs → plugins', () => {
    const actions = plan('apply', {
      plugin: { desired: ['p-new'], current: ['p-old1', 'p-old2'] },
      config: { desired: ['c-new.conf'], current: ['c-old.conf'] },
      manifest: { desired: ['m-new.yaml'], current: ['m-old.yaml'] },
    });
    assert.deepEqual(brief(actions), [
      'ensure plugin p-new (added)',
      'ensure config c-new.conf (added)',
      'ensure manifest m-new.yaml (added)',
      'remove manifest m-old.yaml (removed)',
      'remove config c-old.conf (removed)',
      'remove plugin p-old2 (removed)',
      'remove plugin p-old1 (removed)',
    ]);
  });

  test('nothing changes when desired equals current, but every item is converged (ensure, kept)', () => {
    const actions = plan('apply', { plugin: { desired: ['a', 'b'], current: ['b', 'a'] } });
    assert.deepEqual(brief(actions), ['ensure plugin a (kept)', 'ensure plugin b (kept)']);
  });

  test('a kind not given is not touched', () => {
    assert.deepEqual(plan('apply', {}), []);
    assert.deepEqual(plan('apply', { config: { desired: [], current: [] } }), []);
  });
});

describe('plan: install and uninstall', () => {
  test('install ensures plugins → configs → manifests, each in the given order', () => {
    const actions = plan('install', {
      manifest: { desired: ['crb.yaml', 'sa.yaml'], current: [] },
      config: { desired: ['05-multus.conf', '01-a.conf'], current: [] },
      plugin: { desired: ['multus', 'flannel'], current: [] },
    });
    assert.deepEqual(brief(actions), [
      'ensure plugin multus (requested)',
      'ensure plugin flannel (requested)',
      'ensure config 05-multus.conf (requested)',
      'ensure config 01-a.conf (requested)',
      'ensure manifest crb.yaml (requested)',
      'ensure manifest sa.yaml (requested)',
    ]);
  });

  test('install ignores the current list (install is not apply)', () => {
    const actions = plan('install', { plugin: { desired: ['a'], current: ['b'] } });
    assert.deepEqual(brief(actions), ['ensure plugin a (requested)']);
  });

  test('uninstall removes manifests → configs → plugins, each in reverse of the given order', () => {
    const actions = plan('uninstall', {
      plugin: { desired: ['multus', 'flannel'], current: [] },
      config: { desired: ['05-multus.conf', '10-ipvlan.conf'], current: [] },
      manifest: { desired: ['crb.yaml', 'sa.yaml'], current: [] },
    });
    assert.deepEqual(brief(actions), [
      'remove manifest sa.yaml (requested)',
      'remove manifest crb.yaml (requested)',
      'remove config 10-ipvlan.conf (requested)',
      'remove config 05-multus.conf (requested)',
      'remove plugin flannel (requested)',
      'remove plugin multus (requested)',
    ]);
  });

  test('plan does not modify its input', () => {
    const desired = ['a', 'b', 'c'];
    const current = ['c', 'd'];
    plan('uninstall', { plugin: { desired, current } });
    plan('apply', { plugin: { desired, current } });
    assert.deepEqual(desired, ['a', 'b', 'c']);
    assert.deepEqual(current, ['c', 'd']);
  });

  test('KINDS is the install order', () => {
    assert.deepEqual(KINDS, ['plugin', 'config', 'manifest']);
  });
});
