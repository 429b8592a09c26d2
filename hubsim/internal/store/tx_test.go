package store

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
)

// stores runs f against a file store and a memory store.
func stores(t *testing.T, f func(t *testing.T, s *Store)) {
	t.Run("file", func(t *testing.T) { f(t, openFile(t, filepath.Join(t.TempDir(), FileName))) })
	t.Run("memory", func(t *testing.T) {
		s, err := OpenMemory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
}

func update(t *testing.T, s *Store, fn func(tx *Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func twinDocs(t *testing.T, s *Store, hub string) map[string]string {
	t.Helper()
	rows, err := s.DB().Query(`SELECT device_id, module_id, doc FROM twin_docs WHERE hub = ?`, hub)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var d, m, doc string
		if err := rows.Scan(&d, &m, &doc); err != nil {
			t.Fatal(err)
		}
		out[d+"/"+m] = doc
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestIdentities(t *testing.T) {
	stores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		update(t, s, func(tx *Tx) error {
			for _, id := range []struct{ hub, d, m string }{
				{"h1", "b", ""}, {"h1", "a", "m2"}, {"h1", "a", ""}, {"h1", "a", "m1"}, {"h2", "a", ""},
			} {
				if err := tx.PutIdentity(id.hub, id.d, id.m, []byte(`{"v":1}`), []byte(`{"deviceId":"`+id.d+`"}`)); err != nil {
					return err
				}
			}
			return tx.SetHubSeq("h1", 7)
		})
		// Replace one: the state and the document change, the row count does not.
		update(t, s, func(tx *Tx) error {
			return tx.PutIdentity("h1", "a", "", []byte(`{"v":2}`), []byte(`{"deviceId":"a","version":2}`))
		})
		ids, err := s.Identities(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, id := range ids {
			got = append(got, id.DeviceID+"/"+id.ModuleID+"="+string(id.State))
		}
		want := []string{`a/={"v":2}`, `b/={"v":1}`, `a/m1={"v":1}`, `a/m2={"v":1}`}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("identities = %v, want %v (devices first)", got, want)
		}
		if docs := twinDocs(t, s, "h1"); len(docs) != 4 || docs["a/"] != `{"deviceId":"a","version":2}` {
			t.Fatalf("twin docs = %v", docs)
		}
		if seq, err := s.HubSeq(ctx, "h1"); err != nil || seq != 7 {
			t.Fatalf("seq = %d, %v", seq, err)
		}
		if seq, err := s.HubSeq(ctx, "h2"); err != nil || seq != 0 {
			t.Fatalf("seq of h2 = %d, %v", seq, err)
		}

		update(t, s, func(tx *Tx) error { return tx.PutTwinDoc("h1", "b", "", []byte(`{"connectionState":"Connected"}`)) })
		if docs := twinDocs(t, s, "h1"); docs["b/"] != `{"connectionState":"Connected"}` {
			t.Fatalf("twin doc of b = %q", docs["b/"])
		}

		update(t, s, func(tx *Tx) error { return tx.DeleteModule("h1", "a", "m1") })
		update(t, s, func(tx *Tx) error { return tx.DeleteDevice("h1", "b") })
		ids, _ = s.Identities(ctx, "h1")
		if len(ids) != 2 || ids[0].ModuleID != "" || ids[1].ModuleID != "m2" {
			t.Fatalf("after deletes: %+v", ids)
		}
		update(t, s, func(tx *Tx) error { return tx.DeleteDevice("h1", "a") })
		if ids, _ = s.Identities(ctx, "h1"); len(ids) != 0 {
			t.Fatalf("device delete left its modules: %+v", ids)
		}
		if docs := twinDocs(t, s, "h1"); len(docs) != 0 {
			t.Fatalf("twin docs left: %v", docs)
		}
		if ids, _ = s.Identities(ctx, "h2"); len(ids) != 1 {
			t.Fatalf("the other hub lost its device: %+v", ids)
		}
	})
}

func TestC2DQueue(t *testing.T) {
	stores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		var ids []int64
		update(t, s, func(tx *Tx) error {
			for i, d := range []string{"d1", "d2", "d1", "d1"} {
				id, err := tx.AddC2D("h", d, "t"+string(rune('0'+i)), []byte{byte(i)})
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			_, err := tx.AddC2D("other", "d1", "x", nil)
			return err
		})
		update(t, s, func(tx *Tx) error { return tx.DeleteC2D(ids[2]) })
		msgs, err := s.C2D(ctx, "h")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			got = append(got, m.DeviceID+":"+m.Topic)
		}
		if want := []string{"d1:t0", "d2:t1", "d1:t3"}; !reflect.DeepEqual(got, want) {
			t.Fatalf("queue = %v, want %v", got, want)
		}
		if msgs[2].Body[0] != 3 {
			t.Errorf("body = %v", msgs[2].Body)
		}
		update(t, s, func(tx *Tx) error { return tx.PurgeC2D("h", "d1") })
		msgs, _ = s.C2D(ctx, "h")
		if len(msgs) != 1 || msgs[0].DeviceID != "d2" {
			t.Fatalf("after purge = %+v", msgs)
		}
		if other, _ := s.C2D(ctx, "other"); len(other) != 1 || other[0].Body == nil {
			t.Fatalf("other hub's queue = %+v", other)
		}
	})
}

func TestRecords(t *testing.T) {
	stores(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		for _, k := range []Kind{Enrollments, Groups, Registrations} {
			update(t, s, func(tx *Tx) error {
				for _, key := range []string{"b", "a", "c"} {
					if err := tx.PutRecord(k, key, []byte(`{"k":"`+key+`"}`)); err != nil {
						return err
					}
				}
				if err := tx.PutRecord(k, "a", []byte(`{"k":"a2"}`)); err != nil {
					return err
				}
				if err := tx.DeleteRecord(k, "c"); err != nil {
					return err
				}
				return tx.DeleteRecord(k, "missing")
			})
			recs, err := s.Records(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			want := []Record{{"a", []byte(`{"k":"a2"}`)}, {"b", []byte(`{"k":"b"}`)}}
			if !reflect.DeepEqual(recs, want) {
				t.Fatalf("kind %d: %q, want %q", k, recs, want)
			}
		}
		if err := s.Update(ctx, func(tx *Tx) error { return tx.PutRecord(Kind(99), "x", nil) }); err == nil {
			t.Fatal("unknown kind accepted")
		}
		if _, err := s.Records(ctx, Kind(99)); err == nil {
			t.Fatal("unknown kind listed")
		}
	})
}
