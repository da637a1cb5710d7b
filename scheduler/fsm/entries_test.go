package fsm

import "testing"

// TestEntryTypeNumbersArePinned guards the on-disk format: a log written by
// one build must mean the same to every later build.
func TestEntryTypeNumbersArePinned(t *testing.T) {
	pinned := []struct {
		typ  EntryType
		num  uint8
		name string
	}{
		{EntrySubmitJobs, 1, "SubmitJobs"},
		{EntryCancelJob, 2, "CancelJob"},
		{EntryRegisterNode, 3, "RegisterNode"},
		{EntryApplyPlan, 4, "ApplyPlan"},
		{EntryUpdateAlloc, 5, "UpdateAlloc"},
		{EntrySetNodeState, 6, "SetNodeState"},
		{EntrySetMember, 7, "SetMember"},
		{EntryGPUHealth, 8, "GPUHealth"},
		{EntryPutImage, 9, "PutImage"},
		{EntryRemoveImage, 10, "RemoveImage"},
		{EntryAppendOutput, 11, "AppendOutput"},
		{EntryExpireArtifacts, 12, "ExpireArtifacts"},
		{EntryPutUser, 13, "PutUser"},
		{EntryStartAcceptance, 14, "StartAcceptance"},
		{EntryAcceptanceResults, 15, "AcceptanceResults"},
	}
	for _, p := range pinned {
		if uint8(p.typ) != p.num {
			t.Errorf("%s is %d; it was released as %d and must never change", p.name, uint8(p.typ), p.num)
		}
		if p.typ.String() != p.name {
			t.Errorf("type %d prints as %q, want %q", p.num, p.typ, p.name)
		}
	}
	if entryVersion != 1 {
		t.Errorf("entry payload version is %d; bump it only with a decoder for the old one", entryVersion)
	}
}

func TestDecodeRejectsBadFrames(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{1}},
		{"future version", []byte{1, 9, '{', '}'}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := decode(c.data); err == nil {
				t.Fatalf("decode(%v) accepted a bad frame", c.data)
			}
		})
	}
}
