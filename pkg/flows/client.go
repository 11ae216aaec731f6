// SPDX-License-Identifier: Apache-2.0

package flows

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lbd-project/lbd/pkg/status"
)

// ErrStop, returned by a Stream callback, ends the stream without error.
var ErrStop = errors.New("stop streaming")

// Stream subscribes to the flows of the daemon at socket path and calls fn
// for each event until ctx ends, fn returns an error (ErrStop: none), or
// the daemon goes away. Connection errors wrap status.ErrNotRunning or
// status.ErrPermission.
func Stream(ctx context.Context, path string, f Filter, fn func(Event) error) error {
	q := f.Values().Encode()
	if q != "" {
		q = "?" + q
	}
	resp, err := status.Get(ctx, path, "/v1/flows"+q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("decode flow event: %w", err)
		}
		if err := fn(e); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read flow stream: %w", err)
	}
	return errors.New("the daemon closed the flow stream")
}
