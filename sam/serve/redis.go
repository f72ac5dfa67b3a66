package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/samgo/samgo/sam"
)

// redisTier keeps values in Redis, shared by every replica that names the
// same server: embeddings (the bytes of Embedding.WriteTo, the format of
// `sam embed`'s .safetensors files) under samgo:emb:<encoder identity>:<sha256>,
// image bytes under samgo:img:<sha256>, low-res logits under
// samgo:lr:<handle>. Embeddings and images get the cache TTL, refreshed on
// every read (GETEX); logits a shorter one, they serve a session.
type redisTier struct {
	rdb       *redis.Client
	ttl       time.Duration
	logitsTTL time.Duration
}

const redisPrefix = "samgo:"

// openRedis connects to url (redis://[user:password@]host:port/db) and
// checks the connection.
func openRedis(ctx context.Context, url string, ttl time.Duration) (*redisTier, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis %s: %w", url, err)
	}
	rdb := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	return &redisTier{rdb: rdb, ttl: ttl, logitsTTL: min(ttl, time.Hour)}, nil
}

func (t *redisTier) close() error { return t.rdb.Close() }

func (t *redisTier) ping(ctx context.Context) error { return t.rdb.Ping(ctx).Err() }

// get reads key and refreshes its TTL; nil, nil when it is not there.
func (t *redisTier) get(ctx context.Context, key string, ttl time.Duration) ([]byte, error) {
	b, err := t.rdb.GetEx(ctx, key, ttl).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return b, err
}

func (t *redisTier) embedding(ctx context.Context, model, sha string) (*sam.Embedding, error) {
	b, err := t.get(ctx, redisPrefix+"emb:"+model+":"+sha, t.ttl)
	if err != nil || b == nil {
		return nil, err
	}
	e, err := sam.ParseEmbedding(b)
	if err != nil {
		return nil, fmt.Errorf("redis embedding %s: %w", sha, err)
	}
	return e, nil
}

func (t *redisTier) putEmbedding(ctx context.Context, model, sha string, e *sam.Embedding) error {
	var buf bytes.Buffer
	if _, err := e.WriteTo(&buf); err != nil {
		return err
	}
	return t.rdb.Set(ctx, redisPrefix+"emb:"+model+":"+sha, buf.Bytes(), t.ttl).Err()
}

func (t *redisTier) image(ctx context.Context, sha string) ([]byte, error) {
	return t.get(ctx, redisPrefix+"img:"+sha, t.ttl)
}

func (t *redisTier) putImage(ctx context.Context, sha string, data []byte) error {
	return t.rdb.Set(ctx, redisPrefix+"img:"+sha, data, t.ttl).Err()
}

// putLogits writes the planes in one round trip.
func (t *redisTier) putLogits(ctx context.Context, handles []string, planes []*lowRes) error {
	_, err := t.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, l := range planes {
			p.Set(ctx, redisPrefix+"lr:"+handles[i], encodeLowRes(l), t.logitsTTL)
		}
		return nil
	})
	return err
}

func (t *redisTier) lowRes(ctx context.Context, handle string) (*lowRes, error) {
	b, err := t.get(ctx, redisPrefix+"lr:"+handle, t.logitsTTL)
	if err != nil || b == nil {
		return nil, err
	}
	return decodeLowRes(b)
}
